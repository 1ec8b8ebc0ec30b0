package autoscale

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/ballast-io/ballast/pool/testenv"
)

// swarmLock serialises the test processes that put the host's Docker
// engine into swarm mode, so that one does not leave the swarm under
// another's feet.
const swarmLock = "/run/lock/ballast-swarm-test.lock"

// testLabel, set to the test's ID, is on the service and its containers.
const testLabel = "ballast-autoscale-test"

// TestSwarmScaler scales a real replicated Swarm service: the host's
// Docker engine, put in swarm mode for the test if it is not (and taken
// out again after), runs a service of a busybox image imported for the
// test (no registry); the scaler reads and sets its replicas, the tasks
// follow, and an update racing with a concurrent one is retried.
func TestSwarmScaler(t *testing.T) {
	cli, name, serviceID, id := newTestService(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	s, err := NewSwarmScaler("", name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	waitRunning(t, ctx, s, 1)
	if n, err := s.Replicas(ctx); err != nil || n != 1 {
		t.Fatalf("Replicas: %d, %v; want 1", n, err)
	}

	if err := s.Scale(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Replicas(ctx); err != nil || n != 3 {
		t.Fatalf("Replicas after Scale(3): %d, %v", n, err)
	}
	waitRunning(t, ctx, s, 3)

	// Someone else updates the service between our inspect and our
	// update: Swarm refuses ours as out of sequence, the scaler reads
	// the service again and retries, and the other update is kept.
	raced := false
	s.beforeUpdate = func() {
		if raced {
			return
		}
		raced = true
		svc, err := cli.ServiceInspect(ctx, serviceID, client.ServiceInspectOptions{})
		if err != nil {
			t.Errorf("inspect: %v", err)
			return
		}
		spec := svc.Service.Spec
		spec.Labels = map[string]string{testLabel: id, "raced": "yes"}
		if _, err := cli.ServiceUpdate(ctx, serviceID, client.ServiceUpdateOptions{Version: svc.Service.Version, Spec: spec}); err != nil {
			t.Errorf("concurrent update: %v", err)
		}
	}
	if err := s.Scale(ctx, 2); err != nil {
		t.Fatal(err)
	}
	s.beforeUpdate = nil
	svc, err := cli.ServiceInspect(ctx, serviceID, client.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := svc.Service.Spec.Mode.Replicated.Replicas; !raced || *r != 2 || svc.Service.Spec.Labels["raced"] != "yes" {
		t.Fatalf("after the race: replicas %d, labels %v (raced %v)", *r, svc.Service.Spec.Labels, raced)
	}
	waitRunning(t, ctx, s, 2)

	if err := s.Scale(ctx, 2); err != nil { // already there: no update
		t.Fatal(err)
	}
	if err := s.Scale(ctx, -1); err == nil {
		t.Error("Scale(-1) did not fail")
	}
	missing, err := NewSwarmScaler("", name+"-missing")
	if err != nil {
		t.Fatal(err)
	}
	defer missing.Close()
	if _, err := missing.Replicas(ctx); err == nil {
		t.Error("Replicas of a missing service did not fail")
	}
}

// newTestService puts the host's engine in swarm mode if it is not, and
// creates a replicated service of one replica running a busybox image
// imported for the test; all of it is undone when the test ends. It
// returns a client of the engine, the service's name and ID, and the
// test's ID (testLabel's value on the service and its containers).
func newTestService(t *testing.T) (cli *client.Client, name, serviceID, id string) {
	t.Helper()
	testenv.RequireDocker(t)
	testenv.LockFile(t, swarmLock, "swarm mode")
	ensureSwarm(t)
	id = testenv.RandomID(t)
	image := testenv.ImportBusybox(t, "ballast-autoscale-test:"+id, "sh", "sleep")
	name = "ballast-autoscale-test-" + id
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	one, grace := uint64(1), time.Second
	res, err := cli.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: name, Labels: map[string]string{testLabel: id}},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
			Image: image, Command: []string{"/bin/busybox", "sleep", "3600"}, StopGracePeriod: &grace,
			Labels: map[string]string{testLabel: id},
		}},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
	}}) // QueryRegistry false: --no-resolve-image
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	t.Cleanup(func() { removeService(t, cli, res.ID, id) })
	return cli, name, res.ID, id
}

// waitRunning waits until the service has exactly n running tasks.
func waitRunning(t *testing.T, ctx context.Context, s *SwarmScaler, n int) {
	t.Helper()
	var got int
	var err error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got, err = s.Running(ctx); err == nil && got == n {
			return
		}
	}
	out, _ := exec.Command("docker", "service", "ps", "--no-trunc", s.service).CombinedOutput()
	t.Fatalf("service %s: %d tasks running (%v), want %d\n%s", s.service, got, err, n, out)
}

func removeService(t *testing.T, cli *client.Client, serviceID, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.ServiceRemove(ctx, serviceID, client.ServiceRemoveOptions{}); err != nil {
		t.Errorf("remove service: %v", err)
	}
	// Its containers go shortly after; the image is removed after them.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, err := exec.Command("docker", "ps", "-aq", "--filter", "label="+testLabel+"="+id).Output()
		if err == nil && len(strings.TrimSpace(string(out))) == 0 {
			return
		}
	}
	t.Logf("containers of service %s still there after 30 s", serviceID)
}

// swarmLabel marks the node of a swarm the test initialised, so that a
// later run finds and ends one a killed run left behind; swarmBridgeLabel,
// that the test made the docker_gwbridge network too.
const (
	swarmLabel       = "ballast-autoscale-test-swarm"
	swarmBridgeLabel = "ballast-autoscale-test-gwbridge"
)

// ensureSwarm puts the host's engine in swarm mode as a single-node
// manager if it is not, and takes it out again when the test ends (also
// ending one an earlier, killed run of the test left); an engine already
// in a swarm of its own is used as it is (if it is a manager).
func ensureSwarm(t *testing.T) {
	t.Helper()
	out, err := exec.Command("docker", "info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}").Output()
	if err != nil {
		t.Fatalf("docker info: %v", err)
	}
	state, manager, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	switch state {
	case "inactive":
		// swarm init makes the docker_gwbridge network, and leave keeps
		// it: remove it too if it was not there before. The address pool
		// keeps the ingress network clear of the demo's 10.199/16 and
		// 10.201/16.
		hadBridge := exec.Command("docker", "network", "inspect", "docker_gwbridge").Run() == nil
		if out, err := exec.Command("docker", "swarm", "init", "--advertise-addr", "127.0.0.1",
			"--listen-addr", "127.0.0.1:2377", "--default-addr-pool", "10.203.0.0/16").CombinedOutput(); err != nil {
			testenv.SkipOrFail(t, "docker swarm init: %v\n%s", err, out)
		}
		labels := []string{"--label-add", swarmLabel + "=1"}
		if !hadBridge {
			labels = append(labels, "--label-add", swarmBridgeLabel+"=1")
		}
		node, err := exec.Command("docker", "info", "--format", "{{.Swarm.NodeID}}").Output()
		if err == nil {
			var out []byte
			out, err = exec.Command("docker", append(append([]string{"node", "update"}, labels...), strings.TrimSpace(string(node)))...).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("%w: %s", err, out)
			}
		}
		if err != nil {
			t.Logf("label the swarm's node: %v", err)
		}
		t.Cleanup(func() { leaveSwarm(t, !hadBridge) })
	case "active":
		if manager != "true" {
			testenv.SkipOrFail(t, "the host's Docker engine is a swarm worker; the test needs a manager")
		}
		out, _ := exec.Command("docker", "node", "inspect", "self", "--format",
			`{{index .Spec.Labels "`+swarmLabel+`"}} {{index .Spec.Labels "`+swarmBridgeLabel+`"}}`).Output()
		if mine, bridge, _ := strings.Cut(strings.TrimSpace(string(out)), " "); mine == "1" {
			t.Log("the engine is in a swarm an earlier run of this test made: it will leave it")
			t.Cleanup(func() { leaveSwarm(t, bridge == "1") })
		}
	default:
		testenv.SkipOrFail(t, "the host's Docker engine's swarm state is %q", state)
	}
}

func leaveSwarm(t *testing.T, bridge bool) {
	if out, err := exec.Command("docker", "swarm", "leave", "--force").CombinedOutput(); err != nil {
		t.Errorf("docker swarm leave --force: %v\n%s", err, out)
		return
	}
	if bridge {
		if out, err := exec.Command("docker", "network", "rm", "docker_gwbridge").CombinedOutput(); err != nil {
			t.Errorf("remove docker_gwbridge: %v\n%s", err, out)
		}
	}
}
