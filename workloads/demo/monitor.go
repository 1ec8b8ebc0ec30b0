package demo

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/workloads/sensors"
)

// Sample is what the monitor saw at one moment: how far the pipeline has
// come, where the stack's tasks run and where its volumes are attached.
// A part it could not read has its error instead.
type Sample struct {
	Time         time.Time               `json:"time"`
	Kafka        *sensors.Progress       `json:"kafka,omitempty"`
	KafkaError   string                  `json:"kafka_error,omitempty"`
	Services     map[string]ServiceState `json:"services,omitempty"` // by the service's name in the stack
	SwarmError   string                  `json:"swarm_error,omitempty"`
	Volumes      map[string]VolumeState  `json:"volumes,omitempty"` // by volume name
	BallastError string                  `json:"ballast_error,omitempty"`
}

// ServiceState is a Swarm service's wanted replicas and the nodes
// (hostnames) its running tasks are on.
type ServiceState struct {
	Want  int      `json:"want"`
	Nodes []string `json:"nodes,omitempty"`
	Tasks []string `json:"tasks,omitempty"` // IDs of the running tasks
}

// Running is the number of running tasks.
func (s ServiceState) Running() int { return len(s.Nodes) }

// VolumeState is where a Ballast volume is attached (a Ballast node ID,
// "" when detached) and how many of its replicas are in sync.
type VolumeState struct {
	Attached string `json:"attached,omitempty"`
	Epoch    uint64 `json:"epoch"`
	Repl     int    `json:"repl"`
	InSync   int    `json:"in_sync"`
	// Local: an in-sync replica is on the node it is attached on (data
	// locality: reads need no network).
	Local bool `json:"local,omitempty"`
}

// MonitorConfig says what the monitor watches.
type MonitorConfig struct {
	Kafka         sensors.KafkaConfig
	Topic, Group  string
	Stack         string // Swarm stack whose services are watched
	DockerHost    string // a manager's engine ("" for $DOCKER_HOST or the default socket)
	BallastSocket string
	Interval      time.Duration
	Logger        *slog.Logger
}

// Monitor writes a Sample as one JSON line to out every cfg.Interval until
// ctx ends. It runs on a Swarm manager, in a container on the stack's
// network (to reach the broker by its DNS name) with the node's Docker
// and Ballast sockets mounted.
func Monitor(ctx context.Context, cfg MonitorConfig, out io.Writer) error {
	cli, err := client.New(client.FromEnv, client.WithHost(cmp.Or(cfg.DockerHost, client.DefaultDockerHost)))
	if err != nil {
		return fmt.Errorf("monitor: docker client: %w", err)
	}
	defer cli.Close()
	enc := json.NewEncoder(out)
	tick := time.NewTicker(cfg.Interval)
	defer tick.Stop()
	for {
		s := sample(ctx, cfg, cli)
		if err := enc.Encode(s); err != nil {
			return fmt.Errorf("monitor: write sample: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sample reads the three sources at once, each bounded by the interval
// (at least 1 s), so one that hangs (a broker being rescheduled) does not
// hold up the others.
func sample(ctx context.Context, cfg MonitorConfig, cli *client.Client) Sample {
	s := Sample{Time: time.Now().UTC()}
	ctx, cancel := context.WithTimeout(ctx, max(cfg.Interval, time.Second))
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		p, err := sensors.GroupProgress(ctx, cfg.Kafka, cfg.Topic, cfg.Group)
		if err != nil {
			s.KafkaError = err.Error()
			return
		}
		s.Kafka = &p
	}()
	go func() {
		defer wg.Done()
		svcs, err := stackServices(ctx, cli, cfg.Stack)
		if err != nil {
			s.SwarmError = err.Error()
			return
		}
		s.Services = svcs
	}()
	go func() {
		defer wg.Done()
		vols, err := ballastVolumes(ctx, cfg.BallastSocket)
		if err != nil {
			s.BallastError = err.Error()
			return
		}
		s.Volumes = vols
	}()
	wg.Wait()
	return s
}

// stackServices returns the services of stack with their running tasks'
// nodes.
func stackServices(ctx context.Context, cli *client.Client, stack string) (map[string]ServiceState, error) {
	ns := "com.docker.stack.namespace=" + stack
	svcs, err := cli.ServiceList(ctx, client.ServiceListOptions{Filters: make(client.Filters).Add("label", ns)})
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	tasks, err := cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("label", ns).Add("desired-state", "running")})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	nodes, err := cli.NodeList(ctx, client.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	host := map[string]string{}
	for _, n := range nodes.Items {
		host[n.ID] = n.Description.Hostname
	}
	byID := map[string]string{}
	out := map[string]ServiceState{}
	for _, svc := range svcs.Items {
		name := strings.TrimPrefix(svc.Spec.Name, stack+"_")
		byID[svc.ID] = name
		st := ServiceState{}
		if r := svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
			st.Want = int(*r.Replicas)
		}
		out[name] = st
	}
	for _, t := range tasks.Items {
		name, ok := byID[t.ServiceID]
		if !ok || t.Status.State != swarm.TaskStateRunning {
			continue
		}
		st := out[name]
		st.Nodes = append(st.Nodes, host[t.NodeID])
		sort.Strings(st.Nodes)
		st.Tasks = append(st.Tasks, t.ID)
		out[name] = st
	}
	return out, nil
}

// ballastVolumes returns every Ballast volume's attachment and replicas.
func ballastVolumes(ctx context.Context, socket string) (map[string]VolumeState, error) {
	c, err := api.Dial(socket)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	vols, err := c.ListVolumes(ctx)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	out := map[string]VolumeState{}
	for _, v := range vols {
		st := VolumeState{Repl: v.Repl, Epoch: v.Epoch}
		if v.Attachment != nil {
			st.Attached = v.Attachment.Node
		}
		for _, r := range v.Replicas {
			if r.InSync {
				st.InSync++
				st.Local = st.Local || r.Local
			}
		}
		out[v.Name] = st
	}
	return out, nil
}
