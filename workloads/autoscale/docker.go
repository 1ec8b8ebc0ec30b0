package autoscale

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// Scaler reads and sets the replicas of one service of an orchestrator.
type Scaler interface {
	// Replicas is the number of replicas the service is set to run.
	Replicas(ctx context.Context) (int, error)
	// Scale sets it to n.
	Scale(ctx context.Context, n int) error
}

// SwarmScaler scales a replicated Docker Swarm service through the Docker
// Engine API (the moby/moby client), as `docker service scale` does: it
// inspects the service and updates its spec's replicas with the version
// index it read, so a concurrent update of the service is never
// overwritten; when one happened in between (the engine answers "update out
// of sequence"), it reads the service again and retries.
type SwarmScaler struct {
	cli     *client.Client
	service string // name or ID

	// beforeUpdate, if set, runs between the inspect and the update (tests
	// make a concurrent update there).
	beforeUpdate func()
}

// NewSwarmScaler returns a scaler of service (name or ID) on the Docker
// engine at host ("unix:///var/run/docker.sock", "tcp://h:2376"; empty:
// DOCKER_HOST and the other DOCKER_* variables, else the local socket). It
// must be a manager of the swarm. Nothing is contacted yet; the API version
// is negotiated on the first call.
func NewSwarmScaler(host, service string) (*SwarmScaler, error) {
	if service == "" {
		return nil, errors.New("no service given")
	}
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &SwarmScaler{cli: cli, service: service}, nil
}

// Close releases the client's connections.
func (s *SwarmScaler) Close() error { return s.cli.Close() }

func (s *SwarmScaler) inspect(ctx context.Context) (swarm.Service, error) {
	res, err := s.cli.ServiceInspect(ctx, s.service, client.ServiceInspectOptions{})
	if err != nil {
		return swarm.Service{}, fmt.Errorf("inspect service %s: %w", s.service, err)
	}
	if res.Service.Spec.Mode.Replicated == nil || res.Service.Spec.Mode.Replicated.Replicas == nil {
		return swarm.Service{}, fmt.Errorf("service %s is not a replicated service", s.service)
	}
	return res.Service, nil
}

// Replicas is the replicas of the service's spec.
func (s *SwarmScaler) Replicas(ctx context.Context) (int, error) {
	svc, err := s.inspect(ctx)
	if err != nil {
		return 0, err
	}
	return int(*svc.Spec.Mode.Replicated.Replicas), nil
}

// maxSequenceRetries bounds the retries of an update that lost a race.
const maxSequenceRetries = 10

// Scale sets the service's replicas to n.
func (s *SwarmScaler) Scale(ctx context.Context, n int) error {
	if n < 0 {
		return fmt.Errorf("scale service %s to %d replicas", s.service, n)
	}
	for attempt := 0; ; attempt++ {
		svc, err := s.inspect(ctx)
		if err != nil {
			return err
		}
		if int(*svc.Spec.Mode.Replicated.Replicas) == n {
			return nil
		}
		if s.beforeUpdate != nil {
			s.beforeUpdate()
		}
		spec := svc.Spec
		replicas := uint64(n)
		spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &replicas}
		// QueryRegistry false: keep the image as it is (pinned or local);
		// a scale needs no registry.
		_, err = s.cli.ServiceUpdate(ctx, svc.ID, client.ServiceUpdateOptions{Version: svc.Version, Spec: spec})
		if err == nil {
			return nil
		}
		if !outOfSequence(err) || attempt >= maxSequenceRetries {
			return fmt.Errorf("scale service %s to %d: %w", s.service, n, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
}

// outOfSequence reports whether err is Swarm refusing an update made with
// an outdated version index.
func outOfSequence(err error) bool {
	return strings.Contains(err.Error(), "update out of sequence")
}

// Running counts the service's tasks that are running and meant to be.
func (s *SwarmScaler) Running(ctx context.Context) (int, error) {
	res, err := s.cli.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", s.service).Add("desired-state", "running")})
	if err != nil {
		return 0, fmt.Errorf("tasks of service %s: %w", s.service, err)
	}
	n := 0
	for _, t := range res.Items {
		if t.Status.State == swarm.TaskStateRunning {
			n++
		}
	}
	return n, nil
}
