package autoscale

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
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
	lockSwarm(t)
	ensureSwarm(t)
	id = randomID(t)
	image := importBusybox(t, "ballast-autoscale-test:"+id)
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

// lockSwarm holds swarmLock until the test ends.
func lockSwarm(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(swarmLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Logf("no lock against other swarm tests: %v", err)
		return
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		t.Logf("waiting for another test process to finish with swarm mode (%s)", swarmLock)
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", swarmLock, err)
	}
	t.Cleanup(func() { f.Close() })
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
			if testenv.Required() {
				t.Fatalf("docker swarm init: %v\n%s", err, out)
			}
			t.Skipf("skipping: docker swarm init: %v\n%s", err, out)
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
			t.Skip("skipping: the host's Docker engine is a swarm worker; the test needs a manager")
		}
		out, _ := exec.Command("docker", "node", "inspect", "self", "--format",
			`{{index .Spec.Labels "`+swarmLabel+`"}} {{index .Spec.Labels "`+swarmBridgeLabel+`"}}`).Output()
		if mine, bridge, _ := strings.Cut(strings.TrimSpace(string(out)), " "); mine == "1" {
			t.Log("the engine is in a swarm an earlier run of this test made: it will leave it")
			t.Cleanup(func() { leaveSwarm(t, bridge == "1") })
		}
	default:
		t.Skipf("skipping: the host's Docker engine's swarm state is %q", state)
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

func randomID(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// importBusybox imports a one-layer image holding the host's static
// busybox (Debian's busybox-static) as bin/busybox, as cmd/ballast's Docker
// tests do, and returns its ID (a service naming an image by ID runs it
// without asking a registry). It is removed when the test ends.
func importBusybox(t *testing.T, tag string) string {
	t.Helper()
	testenv.RequireTools(t, "busybox")
	bb, _ := testenv.LookTool("busybox")
	bb, _ = filepath.EvalSymlinks(bb)
	if f, err := elf.Open(bb); err != nil {
		t.Fatalf("%s: %v", bb, err)
	} else {
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				f.Close()
				msg := bb + " is dynamically linked; the test image needs a static busybox (apt-get install busybox-static)"
				if testenv.Required() {
					t.Fatal(msg)
				}
				t.Skip("skipping: " + msg)
			}
		}
		f.Close()
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	now := time.Now()
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "bin/", Mode: 0o755, ModTime: now},
		{Typeflag: tar.TypeDir, Name: "tmp/", Mode: 0o1777, ModTime: now},
		{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "sleep"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("docker", "import", "--message", "ballast autoscale test image (busybox-static)", path, tag).Output()
	if err != nil {
		t.Fatalf("docker import: %v", err)
	}
	imageID := strings.TrimSpace(string(out))
	if !strings.HasPrefix(imageID, "sha256:") {
		t.Fatalf("docker import printed %q, not an image ID", imageID)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("docker", "rmi", "-f", tag).CombinedOutput(); err != nil {
			t.Errorf("remove test image %s: %v\n%s", tag, err, out)
		}
	})
	return imageID
}
