package demo

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ballast-io/ballast/deploy/swarm"
	"github.com/ballast-io/ballast/workloads/sensors"
)

// Names in deploy/swarm/sensors.yml.
const (
	DefaultStack    = "sensors"
	BrokerService   = "kafka"
	CQLService      = "cql"
	ProducerService = "producer"
	IngesterService = "ingester"
	// statefulLabel is the node label that keeps the broker and the CQL
	// server off a node (the Swarm leader, in the demo) when false.
	statefulLabel = "sensors.stateful"
)

// volumeOf is the Ballast volume of a stateful service in stack.
func volumeOf(stack, service string) string { return stack + "_" + service + "-data" }

// Steps of a scenario, run in the order given.
const (
	StepKillCQL    = "kill-cql"    // docker kill the node running the CQL server
	StepKillBroker = "kill-broker" // docker kill the node running the broker
	StepKillDaemon = "kill-daemon" // kill -9 the Ballast daemon on the CQL server's node
	StepBurst      = "burst"       // a burst of readings: the ingesters scale out, then in
)

// Steps lists every step, in the default order.
var Steps = []string{StepKillCQL, StepKillBroker, StepKillDaemon, StepBurst}

// ScenarioConfig says what the scenario does.
type ScenarioConfig struct {
	Stack     string   // Swarm stack name (default "sensors")
	Steps     []string // default Steps
	Rate      int      // readings per second of the steady producer (default 200)
	Sensors   int      // sensors of the steady producer (default 50)
	Burst     int      // readings in the burst (default 160000)
	BurstRate int      // readings per second of the burst (default 4000)
	// IngestMaxRate caps each ingester's readings per second (default
	// 1500), so that one ingester falls behind the burst and the
	// autoscaler has something to do on one machine.
	IngestMaxRate int
	Warmup        time.Duration // readings flow this long before the first step (default 20s)
	Settle        time.Duration // after a failover, before the node comes back (default 10s)
	StepTimeout   time.Duration // longest wait for a recovery (default 3m)
	ReportDir     string        // where samples.jsonl is written as they come ("" for none)
}

func (c ScenarioConfig) withDefaults() (ScenarioConfig, error) {
	if c.Stack == "" {
		c.Stack = DefaultStack
	}
	if c.Steps == nil {
		c.Steps = Steps
	}
	for _, s := range c.Steps {
		if !slices.Contains(Steps, s) {
			return c, fmt.Errorf("demo: unknown step %q; the steps are %s", s, strings.Join(Steps, ", "))
		}
	}
	if c.Rate == 0 {
		c.Rate = 200
	}
	if c.Sensors == 0 {
		c.Sensors = 50
	}
	if c.Burst == 0 {
		c.Burst = 160000
	}
	if c.BurstRate == 0 {
		c.BurstRate = 4000
	}
	if c.IngestMaxRate == 0 {
		c.IngestMaxRate = 1500
	}
	if c.Rate < 0 || c.Sensors < 0 || c.Burst < 0 || c.BurstRate < 0 || c.IngestMaxRate < 0 {
		return c, fmt.Errorf("demo: rate %d, sensors %d, burst %d at %d/s, ingest cap %d/s: none may be negative",
			c.Rate, c.Sensors, c.Burst, c.BurstRate, c.IngestMaxRate)
	}
	if c.Warmup == 0 {
		c.Warmup = 20 * time.Second
	}
	if c.Settle == 0 {
		c.Settle = 10 * time.Second
	}
	if c.StepTimeout == 0 {
		c.StepTimeout = 3 * time.Minute
	}
	return c, nil
}

// Result is what a scenario run saw; the report is made from it.
type Result struct {
	Start, End time.Time
	Nodes      []Node
	Steps      []string
	Samples    []Sample
	Failovers  []Failover
	Timeline   []Event
	Verify     *sensors.VerifyReport
	// BrokerLost: the topic lost acknowledged readings (Rewinds), which
	// verify cannot see.
	BrokerLost bool
	// Problems are steps that did not come back, or a verification that
	// could not run.
	Problems []string
}

// OK is the verdict: every reading produced is stored and every step
// recovered.
func (r *Result) OK() bool { return r.Verify != nil && r.Verify.OK && len(r.Problems) == 0 }

// runner runs one scenario against a cluster.
type runner struct {
	c      *Cluster
	cfg    ScenarioConfig
	log    *slog.Logger
	leader string // the first node: Swarm leader, never hit
	net    string // the stack's network

	mu       sync.Mutex
	samples  []Sample
	events   []Event
	failures []Failure
}

// RunScenario deploys the sensor stack on the demo's Swarm, watches it,
// runs cfg's steps, stops the producer, waits for the ingesters to catch
// up and verifies every reading. The Result holds what was seen even when
// a step fails (err is then set too); the stack is left running.
func RunScenario(ctx context.Context, c *Cluster, cfg ScenarioConfig) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &runner{c: c, cfg: cfg, log: c.Config.Logger, leader: c.Node(1).Name, net: cfg.Stack + "_sensors"}
	res := &Result{Start: time.Now(), Nodes: c.Nodes, Steps: cfg.Steps}
	err = r.run(ctx, res)
	r.mu.Lock()
	res.End = time.Now()
	res.Samples = slices.Clone(r.samples)
	for _, f := range r.failures {
		res.Failovers = append(res.Failovers, Analyze(res.Samples, f))
	}
	res.Timeline = Timeline(r.events, res.Samples, res.Failovers)
	r.mu.Unlock()
	for _, e := range Rewinds(res.Samples) {
		res.BrokerLost = true
		res.Problems = append(res.Problems, fmt.Sprintf("%s at +%.0f s: %s", e.What, e.Time.Sub(res.Start).Seconds(), e.Detail))
	}
	if err != nil {
		res.Problems = append(res.Problems, err.Error())
	}
	return res, err
}

func (r *runner) run(ctx context.Context, res *Result) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := r.deploy(ctx); err != nil {
		return err
	}
	monitorDone, err := r.startMonitor(ctx)
	if err != nil {
		return err
	}
	defer func() {
		r.removeMonitor()
		cancel()
		<-monitorDone
	}()
	go r.progress(ctx)
	if err := r.waitFlowing(ctx, 3*time.Minute); err != nil {
		return err
	}
	r.event("readings flowing", fmt.Sprintf("%d sensors at %d readings/s", r.cfg.Sensors, r.cfg.Rate))
	if err := sleep(ctx, r.cfg.Warmup); err != nil {
		return err
	}
	if err := r.waitWhole(ctx); err != nil {
		return err
	}
	var problems []error
	for _, step := range r.cfg.Steps {
		r.log.Info("demo: step", "step", step)
		var err error
		switch step {
		case StepKillCQL:
			err = r.killNode(ctx, CQLService)
		case StepKillBroker:
			err = r.killNode(ctx, BrokerService)
		case StepKillDaemon:
			err = r.killDaemon(ctx, CQLService)
		case StepBurst:
			err = r.burst(ctx)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			r.log.Error("demo: step failed", "step", step, "err", err)
			r.event("step "+step+" failed", err.Error())
			problems = append(problems, fmt.Errorf("step %s: %w", step, err))
		}
	}
	res.Verify, err = r.finish(ctx)
	if err != nil {
		problems = append(problems, err)
	}
	return errors.Join(problems...)
}

// event adds one of the runner's own events to the timeline.
func (r *runner) event(what, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, Event{Time: time.Now().UTC(), What: what, Detail: detail})
}

func (r *runner) latest() (Sample, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return Sample{}, false
	}
	return r.samples[len(r.samples)-1], true
}

// leaderDocker runs the docker CLI on the first node (a Swarm manager
// that no step hits).
func (r *runner) leaderDocker(ctx context.Context, args ...string) (string, error) {
	return dockerExec(ctx, r.leader, append([]string{"docker"}, args...)...)
}

// deploy labels the leader so the stateful services stay off it and
// deploys sensors.yml.
func (r *runner) deploy(ctx context.Context) error {
	if _, err := r.leaderDocker(ctx, "node", "update", "--label-add", statefulLabel+"=false", r.leader); err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	// By ID: a task of an image named by tag first asks a registry for
	// it (0.4 s on each failover's path here, where there is none).
	id, err := r.leaderDocker(ctx, "image", "inspect", "-f", "{{.Id}}", r.c.WorkloadImage)
	if err != nil {
		return fmt.Errorf("deploy: %w", err)
	}
	env := []string{
		"BALLAST_IMAGE=" + id, "STACK=" + r.cfg.Stack,
		"RATE=" + strconv.Itoa(r.cfg.Rate), "SENSORS=" + strconv.Itoa(r.cfg.Sensors),
		"MAX_INGESTERS=3", "SCALE_OUT_LAG=5000", "INGEST_MAX_RATE=" + strconv.Itoa(r.cfg.IngestMaxRate),
	}
	args := []string{"exec", "-i"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	args = append(args, r.leader, "docker", "stack", "deploy", "--resolve-image", "never", "-c", "-", r.cfg.Stack)
	if _, err := run(ctx, bytes.NewReader(swarm.SensorsStack), "docker", args...); err != nil {
		return fmt.Errorf("deploy the %s stack: %w", r.cfg.Stack, err)
	}
	r.event("stack deployed", fmt.Sprintf("deploy/swarm/sensors.yml as %q, image %s (%s)", r.cfg.Stack, r.c.WorkloadImage, id))
	return nil
}

// monitorName is the monitor container on the leader.
func (r *runner) monitorName() string { return r.cfg.Stack + "-monitor" }

// startMonitor runs the monitor (Monitor) in a container on the leader,
// on the stack's network, and follows its samples until ctx ends; the
// channel is closed when it stopped following.
func (r *runner) startMonitor(ctx context.Context) (<-chan struct{}, error) {
	_, err := r.leaderDocker(ctx, "run", "-d", "--name", r.monitorName(), "--network", r.net,
		"-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", "/run/ballast:/run/ballast",
		r.c.WorkloadImage, "ballast", "demo", "monitor", "--stack", r.cfg.Stack, "--brokers", BrokerService+":9092", "--interval", "1s")
	if err != nil {
		return nil, fmt.Errorf("start the monitor: %w", err)
	}
	var save *os.File
	if r.cfg.ReportDir != "" {
		if err := os.MkdirAll(r.cfg.ReportDir, 0o755); err != nil {
			return nil, fmt.Errorf("report dir: %w", err)
		}
		if save, err = os.Create(filepath.Join(r.cfg.ReportDir, "samples.jsonl")); err != nil {
			return nil, fmt.Errorf("report dir: %w", err)
		}
	}
	cmd := exec.CommandContext(ctx, "docker", "exec", r.leader, "docker", "logs", "-f", r.monitorName())
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("follow the monitor: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cmd.Wait()
		if save != nil {
			defer save.Close()
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var s Sample
			if json.Unmarshal(sc.Bytes(), &s) != nil || s.Time.IsZero() {
				continue
			}
			if save != nil {
				save.Write(append(sc.Bytes(), '\n'))
			}
			r.mu.Lock()
			r.samples = append(r.samples, s)
			r.mu.Unlock()
		}
	}()
	return done, nil
}

func (r *runner) removeMonitor() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.leaderDocker(ctx, "rm", "-f", r.monitorName()); err != nil {
		r.log.Warn("demo: remove the monitor", "err", err)
	}
}

// progress logs a line on what the monitor sees every 5 s.
func (r *runner) progress(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s, ok := r.latest()
		if !ok {
			r.log.Info("demo: waiting for the monitor's first sample")
			continue
		}
		args := []any{}
		if s.Kafka != nil {
			args = append(args, "produced", s.Kafka.Produced, "stored", s.Kafka.Committed, "lag", s.Kafka.Lag())
		} else {
			args = append(args, "kafka", s.KafkaError)
		}
		for _, svc := range []string{BrokerService, CQLService, IngesterService} {
			st := s.Services[svc]
			args = append(args, svc, fmt.Sprintf("%d/%d %s", st.Running(), st.Want, strings.Join(st.Nodes, ",")))
		}
		if s.SwarmError != "" {
			args = append(args, "swarm", s.SwarmError)
		}
		r.log.Info("demo: pipeline", args...)
	}
}

// waitFor polls the latest sample until ok says so.
func (r *runner) waitFor(ctx context.Context, timeout time.Duration, what string, ok func(Sample) (bool, string)) error {
	return poll(ctx, timeout, 500*time.Millisecond, what, func() (bool, string, error) {
		s, have := r.latest()
		if !have {
			return false, "no sample from the monitor yet", nil
		}
		done, detail := ok(s)
		return done, detail, nil
	})
}

// storedAfter reports whether two samples taken after t show the
// committed readings going up.
func (r *runner) storedAfter(t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	var prev int64 = -1
	for _, s := range r.samples {
		if s.Time.Before(t) || s.Kafka == nil {
			continue
		}
		if prev >= 0 && s.Kafka.Committed > prev {
			return true
		}
		prev = s.Kafka.Committed
	}
	return false
}

// waitFlowing waits for the broker and CQL server to run and readings to
// be stored.
func (r *runner) waitFlowing(ctx context.Context, timeout time.Duration) error {
	since := time.Now()
	return r.waitFor(ctx, timeout, "readings flowing into the store", func(s Sample) (bool, string) {
		for _, svc := range []string{BrokerService, CQLService, ProducerService, IngesterService} {
			if s.Services[svc].Running() == 0 {
				return false, svc + " not running"
			}
		}
		if s.Kafka == nil {
			return false, "broker: " + s.KafkaError
		}
		return r.storedAfter(since), fmt.Sprintf("%d readings stored", s.Kafka.Committed)
	})
}

// failure records what runs where before service's node (or its daemon)
// is hit.
func (r *runner) failure(kind, service string) (Failure, error) {
	s, ok := r.latest()
	if !ok {
		return Failure{}, errors.New("no sample from the monitor")
	}
	svc := s.Services[service]
	if svc.Running() != 1 {
		return Failure{}, fmt.Errorf("%s has %d running tasks, want 1", service, svc.Running())
	}
	f := Failure{Kind: kind, At: time.Now().UTC(), Node: svc.Nodes[0], Service: service, Volume: volumeOf(r.cfg.Stack, service), Tasks: svc.Tasks}
	if f.Node == r.leader {
		return Failure{}, fmt.Errorf("%s runs on %s, the Swarm leader; the demo keeps stateful services off it (label %s=false)", service, f.Node, statefulLabel)
	}
	for _, n := range r.c.Nodes {
		if n.Name == f.Node {
			f.BallastNode = n.ID
		}
	}
	f.Epoch = s.Volumes[f.Volume].Epoch
	return f, nil
}

// record adds f, about to be caused, to the failures analysed at the end,
// and its event to the timeline.
func (r *runner) record(f Failure, what, detail string) {
	r.event(what, detail)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failures = append(r.failures, f)
}

// recover waits until the pipeline stores readings again after f.
func (r *runner) recover(ctx context.Context, f Failure) (Failover, error) {
	var fo Failover
	err := poll(ctx, r.cfg.StepTimeout, 500*time.Millisecond, fmt.Sprintf("%s back after %s on %s", f.Service, f.Kind, f.Node), func() (bool, string, error) {
		r.mu.Lock()
		fo = Analyze(r.samples, f)
		r.mu.Unlock()
		switch {
		case fo.Rescheduled.IsZero() && f.Kind != FailDaemon: // a daemon's volume is taken over in place
			return false, "not rescheduled", nil
		case fo.Attached.IsZero():
			return false, "volume not attached again", nil
		}
		return fo.Recovered(), "no reading stored since", nil
	})
	if err == nil {
		r.log.Info("demo: failover done", "service", f.Service, "seconds", fmt.Sprintf("%.1f", fo.Seconds()),
			"runs_on", fo.RunsOn, "volume_attached_on", fo.AttachedOn)
	}
	return fo, err
}

// killNode docker-kills the node running service, waits for the pipeline
// to come back elsewhere, starts the node again and waits for every
// volume's replicas to be in sync before the next step.
func (r *runner) killNode(ctx context.Context, service string) error {
	f, err := r.failure(FailKillNode, service)
	if err != nil {
		return err
	}
	r.record(f, "docker kill "+f.Node, fmt.Sprintf("the node running %s (volume %s attached there, epoch %d)", service, f.Volume, f.Epoch))
	if err := r.kill(ctx, f.Node); err != nil {
		return err
	}
	_, rerr := r.recover(ctx, f)
	if rerr == nil {
		rerr = sleep(ctx, r.cfg.Settle)
	}
	// Bring the node back even when the failover failed: the next step
	// needs the cluster whole.
	if _, err := docker(ctx, "start", f.Node); err != nil {
		return errors.Join(rerr, err)
	}
	r.event("node "+f.Node+" started again", "its dockerd rejoins the Swarm, its Ballast daemon the cluster")
	if err := r.waitWhole(ctx); err != nil {
		return errors.Join(rerr, err)
	}
	return rerr
}

// kill is the demo's stand-in for a machine dying: it cuts the node off
// the network, aborts its FUSE connections, and docker-kills it. Unlike
// a dead machine, a killed node container shares the host's kernel and
// does not stop at once: its processes exit one by one, those in ext4
// I/O only once the Ballast daemon under them answers or goes. The last
// one out may never go: when it is the Ballast daemon, the ext4 it
// served is flushed on the way out (the end of its mount namespace comes
// before the release of its /dev/fuse file) through its own FUSE
// connection, and the container never exits ("did not receive an exit
// event"). So the FUSE connections end with the machine, as they would.
// The network goes first: a process still running when its FUSE
// connection ends sees an error, and the broker acknowledges a batch
// whose fsync failed (kfake ignores the error), which must not reach a
// client any more than anything else a dead machine did not do.
// Measured without the cut and the abort, a node took 3 s to stop, or
// did not.
func (r *runner) kill(ctx context.Context, node string) error {
	_, fuse, ferr := nodeLoops(ctx, node)
	if err := cutNetwork(ctx, node); err != nil {
		_, kerr := docker(ctx, "kill", node) // it must not be left running
		return errors.Join(err, kerr)
	}
	aerr := abortFUSE(r.c.Config, fuse)
	if aerr != nil || ferr != nil {
		r.log.Warn("demo: could not abort every FUSE connection of the killed node", "node", node, "err", errors.Join(ferr, aerr))
	}
	_, kerr := docker(ctx, "kill", node)
	err := poll(ctx, 30*time.Second, 100*time.Millisecond, node+" stopped", func() (bool, string, error) {
		out, err := docker(ctx, "inspect", "-f", "{{.State.Running}}", node)
		return err == nil && out == "false", out, nil
	})
	if err != nil {
		return errors.Join(kerr, ferr, aerr, err)
	}
	return nil
}

// killDaemon kill -9s the serving Ballast daemon (only) on the node
// running service: the child of "ballast daemon", whose keeper holds the
// volumes' FUSE connections and starts a new daemon, which takes them
// over under the running containers.
func (r *runner) killDaemon(ctx context.Context, service string) error {
	f, err := r.failure(FailDaemon, service)
	if err != nil {
		return err
	}
	r.record(f, "kill -9 the serving Ballast daemon on "+f.Node, fmt.Sprintf("the node running %s; its keeper, dockerd and the containers stay up", service))
	const kill = `k=$(cat /run/ballast-demo/ballast.pid) && c=$(cat /proc/$k/task/*/children) && [ -n "$c" ] && kill -9 $c`
	if out, err := dockerExec(ctx, f.Node, "sh", "-c", kill); err != nil {
		return fmt.Errorf("kill the serving daemon on %s: %w: %s", f.Node, err, out)
	}
	_, rerr := r.recover(ctx, f)
	if err := r.waitWhole(ctx); err != nil {
		return errors.Join(rerr, err)
	}
	return rerr
}

// waitWhole waits for every node's dockerd and Ballast daemon to be ready
// and every volume of the stack to have all its replicas in sync, one of
// them on the node it is attached on: a failure step starts from a
// settled cluster. (A volume attached where it has no replica gets one
// built there after the daemons' locality delay, 30 s; measured, such a
// rebuild starting during a failover slowed the broker for its 9 s and
// the CQL server's failover took 14 s instead of 9.)
func (r *runner) waitWhole(ctx context.Context) error {
	for _, n := range r.c.Nodes {
		err := poll(ctx, r.cfg.StepTimeout, time.Second, n.Name+" ready", func() (bool, string, error) {
			_, err := dockerExec(ctx, n.Name, "test", "-e", "/run/ballast-demo/ready")
			return err == nil, "", nil
		})
		if err != nil {
			return err
		}
	}
	prefix := r.cfg.Stack + "_"
	err := r.waitFor(ctx, r.cfg.StepTimeout, "every replica in sync", func(s Sample) (bool, string) {
		if s.BallastError != "" {
			return false, s.BallastError
		}
		var behind []string
		for name, v := range s.Volumes {
			switch {
			case !strings.HasPrefix(name, prefix):
			case v.InSync < v.Repl:
				behind = append(behind, fmt.Sprintf("%s %d/%d in sync", name, v.InSync, v.Repl))
			case v.Attached != "" && !v.Local:
				behind = append(behind, fmt.Sprintf("%s not local to %s yet", name, v.Attached))
			}
		}
		slices.Sort(behind)
		return len(behind) == 0, strings.Join(behind, ", ")
	})
	if err != nil {
		return err
	}
	r.event("every replica in sync", "all nodes up, every volume local where it is attached; the next step may begin")
	return nil
}

// burstEvent is the timeline event of the burst's start.
const burstEvent = "burst"

// burst produces cfg.Burst readings at cfg.BurstRate from 100 more
// sensors, then waits for the ingesters to scale out and back in.
func (r *runner) burst(ctx context.Context) error {
	s, _ := r.latest()
	start := s.Services[IngesterService].Want
	r.event(burstEvent, fmt.Sprintf("%d readings from 100 more sensors at %d/s; each ingester handles at most %d/s", r.cfg.Burst, r.cfg.BurstRate, r.cfg.IngestMaxRate))
	bctx, cancel := context.WithTimeout(ctx, r.cfg.StepTimeout)
	defer cancel()
	name := r.cfg.Stack + "-burst"
	defer func() {
		// Killing the CLI leaves the container running: remove it.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer rcancel()
		r.leaderDocker(rctx, "rm", "-f", name)
	}()
	if _, err := r.leaderDocker(bctx, "run", "--rm", "--name", name, "--network", r.net, r.c.WorkloadImage,
		"ballast", "workload", "produce", "--brokers", BrokerService+":9092", "--sensor-prefix", "burst",
		"--sensors", "100", "--count", strconv.Itoa(r.cfg.Burst), "--rate", strconv.Itoa(r.cfg.BurstRate), "--log-level", "warn"); err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	r.event("burst produced", "")
	if err := r.waitFor(ctx, r.cfg.StepTimeout, "ingesters scaled out", func(s Sample) (bool, string) {
		want := s.Services[IngesterService].Want
		return want > start, fmt.Sprintf("%d replicas", want)
	}); err != nil {
		return err
	}
	return r.waitFor(ctx, r.cfg.StepTimeout, "ingesters scaled back in", func(s Sample) (bool, string) {
		want := s.Services[IngesterService].Want
		return want <= start, fmt.Sprintf("%d replicas", want)
	})
}

// finish stops the producer, waits for the ingesters to store every
// reading and runs `ballast workload verify` on the stack's network.
func (r *runner) finish(ctx context.Context) (*sensors.VerifyReport, error) {
	if _, err := r.leaderDocker(ctx, "service", "scale", "--detach", r.cfg.Stack+"_"+ProducerService+"=0"); err != nil {
		return nil, fmt.Errorf("stop the producer: %w", err)
	}
	r.event("producer stopped", "the ingesters drain the lag")
	if err := r.waitFor(ctx, r.cfg.StepTimeout, "every reading committed", func(s Sample) (bool, string) {
		if s.Kafka == nil {
			return false, s.KafkaError
		}
		return s.Services[ProducerService].Running() == 0 && s.Kafka.Lag() == 0, fmt.Sprintf("lag %d", s.Kafka.Lag())
	}); err != nil {
		return nil, err
	}
	out, err := r.leaderDocker(ctx, "run", "--rm", "--network", r.net, r.c.WorkloadImage,
		"ballast", "workload", "verify", "--brokers", BrokerService+":9092", "--cassandra", CQLService+":9042",
		"--wait", "1m", "--json", "--log-level", "warn")
	var rep sensors.VerifyReport
	if jerr := json.Unmarshal([]byte(out), &rep); jerr != nil {
		return nil, fmt.Errorf("verify: %w (output %q)", errors.Join(err, jerr), tail(out, 300))
	}
	t := rep.Total
	r.event("verified", fmt.Sprintf("%d readings produced, %d stored, %d missing", t.Produced, t.Stored, t.Missing))
	return &rep, nil
}

// RemoveStack removes the stack and its volumes from the demo's Swarm.
func RemoveStack(ctx context.Context, c *Cluster, stack string) error {
	leader := c.Node(1).Name
	if _, err := dockerExec(ctx, leader, "docker", "stack", "rm", stack); err != nil {
		return err
	}
	var errs []error
	for _, svc := range []string{BrokerService, CQLService} {
		vol := volumeOf(stack, svc)
		// The tasks' containers take a moment to go.
		errs = append(errs, poll(ctx, time.Minute, time.Second, "remove volume "+vol, func() (bool, string, error) {
			_, err := dockerExec(ctx, leader, "docker", "volume", "rm", vol)
			if err != nil && strings.Contains(err.Error(), "no such volume") {
				return true, "", nil
			}
			return err == nil, fmt.Sprint(err), nil
		}))
	}
	return errors.Join(errs...)
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
