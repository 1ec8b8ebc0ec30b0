package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
	"github.com/ballast-io/ballast/pool/testenv"
)

// The Docker tests serve the plugin as "ballast-test", not "ballast", so
// they never clash with a real installation. The name is fixed, not drawn
// at random per test, on purpose: dockerd keeps every legacy plugin it has
// seen until it restarts, and asks each one that is gone, for up to 15 s
// apiece, one after the other, whenever it looks up a volume name it does
// not know (docker run -v NEW:/path, docker volume inspect of an unknown
// name). A new name per run would slow the host's Docker down a little more
// with every run; one name costs that once. Test binaries running at the
// same time take turns through dockerLock.
const (
	dockerPlugin = "ballast-test"
	dockerSocket = "/run/docker/plugins/" + dockerPlugin + ".sock"
	dockerLock   = "/run/lock/ballast-docker-test.lock"
)

// dockerEnv is what a test against the real Docker engine works with: the
// test plugin's name and socket, a busybox image imported for the test,
// and a label on every container it starts.
type dockerEnv struct {
	t      *testing.T
	plugin string // the driver name: docker volume create -d PLUGIN
	socket string // /run/docker/plugins/PLUGIN.sock
	image  string
	label  string // ballast-test=ID, on every container the test starts

	mu      sync.Mutex
	volumes []string // names Docker knows volumes of this test by, oldest first
	cleanup sync.Once
}

// newDockerEnv skips (or fails) the test without Docker, waits for other
// test processes using the test plugin to finish, and imports the test
// image, removed when the test ends. Call it before launching the daemons,
// and serving after, so that the test's containers and volumes are removed
// before the daemons stop, and the lock released after.
func newDockerEnv(t *testing.T) *dockerEnv {
	t.Helper()
	testenv.RequirePrivileged(t)
	testenv.RequireDocker(t)
	testenv.LockFile(t, dockerLock, "the "+dockerPlugin+" plugin")
	id := testenv.RandomID(t)
	e := &dockerEnv{
		t:      t,
		plugin: dockerPlugin,
		socket: dockerSocket,
		image:  "ballast-test-busybox:" + id,
		label:  "ballast-test=" + id,
	}
	e.importImage()
	return e
}

// importImage imports the test image (testenv.ImportBusybox), removed
// when the test ends.
func (e *dockerEnv) importImage() {
	e.t.Helper()
	testenv.ImportBusybox(e.t, e.image, "sh", "cat", "dd", "sync", "sleep", "sha256sum", "grep", "touch")
}

// serving waits until d answers on the plugin socket and, the first time,
// registers the removal of the test's containers and volumes, which runs
// before the cleanups of the daemons launched so far stop them (cleanups
// run last registered first).
func (e *dockerEnv) serving(d *daemon) {
	t := e.t
	t.Helper()
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		c, err := net.DialTimeout("unix", e.socket, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("daemon %s does not serve the Docker plugin on %s: %v", d.node, e.socket, err)
		}
	}
	e.cleanup.Do(func() { t.Cleanup(e.removeAll) })
}

func (e *dockerEnv) removeAll() {
	out, err := e.docker("ps", "-aq", "--filter", "label="+e.label)
	if ids := strings.Fields(out); err == nil && len(ids) > 0 {
		if out, err := e.docker(append([]string{"rm", "-f"}, ids...)...); err != nil {
			e.t.Errorf("remove the test's containers: %v\n%s", err, out)
		}
	} else if err != nil {
		e.t.Errorf("list the test's containers: %v\n%s", err, out)
	}
	e.mu.Lock()
	vols := slices.Clone(e.volumes)
	e.mu.Unlock()
	slices.Reverse(vols) // clones before their sources
	for _, v := range vols {
		// -f: Docker forgets the volume even if the plugin refuses.
		if out, err := e.docker("volume", "rm", "-f", v); err != nil {
			e.t.Errorf("remove volume %q: %v\n%s", v, err, out)
		}
	}
}

// track records a name Docker now keeps a volume under, for removeAll;
// untrack forgets it once the test removed it.
func (e *dockerEnv) track(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !slices.Contains(e.volumes, name) {
		e.volumes = append(e.volumes, name)
	}
}

func (e *dockerEnv) untrack(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.volumes = slices.DeleteFunc(e.volumes, func(v string) bool { return v == name })
}

// docker runs the docker CLI and returns its combined output.
func (e *dockerEnv) docker(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return string(out), err
}

// mustDocker runs the docker CLI and fails the test if it fails.
func (e *dockerEnv) mustDocker(args ...string) string {
	e.t.Helper()
	out, err := e.docker(args...)
	if err != nil {
		e.t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// runArgs is a docker run of the test image, labelled as the test's: opts
// (flags such as -v, -d) then the command.
func (e *dockerEnv) runArgs(opts []string, cmd ...string) []string {
	args := append([]string{"run", "--label", e.label}, opts...)
	return append(append(args, e.image), cmd...)
}

// create makes a volume with docker volume create -d PLUGIN args... and
// records name (what Docker calls it) for the cleanup.
func (e *dockerEnv) create(name string, args ...string) {
	e.t.Helper()
	e.mustDocker(append(append([]string{"volume", "create", "-d", e.plugin}, args...), name)...)
	e.track(name)
}

// waitDetached polls the daemon on client until vol is attached nowhere.
func waitDetached(t *testing.T, client *api.Client, vol string) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		v, err := client.InspectVolume(ctx, vol)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if v.Attachment == nil {
			return
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("volume %s still attached (%+v) 15s after its last container stopped", vol, v.Attachment)
		}
	}
}

// mountCount counts the mounts at path in this (Docker's) mount namespace.
func mountCount(t *testing.T, path string) int {
	t.Helper()
	return len(mountsMatching(t, func(mp, _, _ string) bool { return mp == path }))
}

// TestDockerVolumes drives a single node's Docker plugin through the
// docker CLI: volumes created with --opt options and with inline specs
// (also by docker run -v), listed with global scope, inspected, written by
// one container and read by the next, shared by two running containers
// through one attachment that goes away with the last of them, protected
// from removal while in use, and bad options refused with an error that
// says what is wrong and without creating anything.
func TestDockerVolumes(t *testing.T) {
	e := newDockerEnv(t)
	d := launch(t, "n1", []string{"disk1", "disk2"}, "--docker-socket", e.socket)
	e.serving(d)
	ctx := d.ctx()
	inspect := func(name string) *api.Volume {
		t.Helper()
		v, err := d.client.InspectVolume(ctx, name)
		if err != nil {
			t.Fatalf("ballast inspect %s: %v", name, err)
		}
		return v
	}

	// Create, with --opt options and with inline specs.
	start := time.Now()
	e.create("v1", "--opt", "size=64M", "--opt", "repl=2")
	const v2 = "size=64M,repl=1,name=v2"
	e.create(v2)
	e.create("vx", "--opt", "fs=xfs", "--opt", "size=300M")
	for _, want := range []spec.Volume{
		{Name: "v1", Size: 64 << 20, Repl: 2, FS: "ext4"},
		{Name: "v2", Size: 64 << 20, Repl: 1, FS: "ext4"},
		{Name: "vx", Size: 300 << 20, Repl: 1, FS: "xfs"},
	} {
		v := inspect(want.Name)
		if v.Size != want.Size || v.Repl != want.Repl || v.FS != want.FS || len(v.Replicas) != want.Repl {
			t.Errorf("volume %s: size %d, repl %d, fs %s, %d replicas; want size %d, repl %d, fs %s",
				want.Name, v.Size, v.Repl, v.FS, len(v.Replicas), want.Size, want.Repl, want.FS)
		}
	}
	t.Logf("3 volumes created through Docker in %s", time.Since(start).Round(time.Millisecond))

	ls := e.mustDocker("volume", "ls", "--filter", "driver="+e.plugin, "--format", "{{.Driver}} {{.Name}} {{.Scope}}")
	for _, name := range []string{"v1", "v2", "vx"} {
		if want := e.plugin + " " + name + " global"; !slices.Contains(strings.Split(ls, "\n"), want) {
			t.Errorf("docker volume ls has no line %q:\n%s", want, ls)
		}
	}
	got := e.mustDocker("volume", "inspect", "--format", `{{.Driver}} {{.Scope}} {{index .Status "size"}} {{index .Status "repl"}} {{index .Status "fs"}} mnt={{.Mountpoint}}`, "v1")
	if want := fmt.Sprintf("%s global %s 2 ext4 mnt=", e.plugin, spec.FormatSize(64<<20)); strings.TrimSpace(got) != want {
		t.Errorf("docker volume inspect v1: %q, want %q", strings.TrimSpace(got), want)
	}

	// One container writes, the next reads it back; each leaves the volume
	// detached.
	start = time.Now()
	e.mustDocker(e.runArgs([]string{"--rm", "-v", "v1:/data"}, "sh", "-c", "echo hello > /data/f && sync")...)
	t.Logf("first container on v1 ran in %s", time.Since(start).Round(time.Millisecond))
	waitDetached(t, d.client, "v1")
	if got := e.mustDocker(e.runArgs([]string{"--rm", "-v", "v1:/data"}, "cat", "/data/f")...); got != "hello\n" {
		t.Fatalf("second container read %q from v1, want %q", got, "hello\n")
	}
	waitDetached(t, d.client, "v1")

	// The container sees the xfs filesystem it asked for.
	if got := e.mustDocker(e.runArgs([]string{"--rm", "-v", "vx:/data"}, "grep", " /data ", "/proc/mounts")...); !strings.Contains(got, " xfs ") {
		t.Errorf("volume vx at /data in the container is not xfs: %q", got)
	}

	// docker run creates a volume on the fly from an inline spec.
	const v3 = "size=64M,name=v3"
	e.track(v3)
	if got := e.mustDocker(e.runArgs([]string{"--rm", "--volume-driver", e.plugin, "-v", v3 + ":/data"}, "sh", "-c", "echo three > /data/f && cat /data/f")...); got != "three\n" {
		t.Errorf("container on the inline-spec volume: %q", got)
	}
	if v := inspect("v3"); v.Size != 64<<20 || v.Repl != 1 {
		t.Errorf("volume v3 created by docker run: size %d, repl %d", v.Size, v.Repl)
	}
	waitDetached(t, d.client, "v3")

	// An inline spec naming an existing volume must describe it: a create
	// or a docker run -v that asks for another size or repl is refused
	// with the difference named, and nothing is mounted; the same spec
	// and the plain name keep working.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"volume", "create", "-d", e.plugin, "size=128M,repl=2,name=v3"}, "size 64MiB (asked for 128MiB), repl 1 (asked for 2)"},
		{e.runArgs([]string{"--rm", "--volume-driver", e.plugin, "-v", "size=1G,name=v3:/data"}, "true"), "size 64MiB (asked for 1GiB)"},
	} {
		out, err := e.docker(c.args...)
		if err == nil {
			e.track(c.args[len(c.args)-1])
			t.Errorf("docker %s succeeded on v3 (64 MiB, repl 1):\n%s", strings.Join(c.args, " "), out)
			continue
		}
		if want := `volume "v3" already exists with a different spec: ` + c.want; !strings.Contains(out, want) {
			t.Errorf("docker %s: %q; want an error containing %q", strings.Join(c.args, " "), out, want)
		}
		t.Logf("docker %s: %s", strings.Join(c.args, " "), strings.TrimSpace(out))
	}
	if v := inspect("v3"); v.Size != 64<<20 || v.Repl != 1 || v.Attachment != nil {
		t.Errorf("v3 after the refused specs: size %d, repl %d, attachment %+v; want 64 MiB, repl 1, detached", v.Size, v.Repl, v.Attachment)
	}
	e.track("v3") // docker run -v v3:... makes Docker keep the name too
	for _, name := range []string{v3, "v3"} {
		if got := e.mustDocker(e.runArgs([]string{"--rm", "--volume-driver", e.plugin, "-v", name + ":/data"}, "cat", "/data/f")...); got != "three\n" {
			t.Errorf("container on %s read %q, want %q", name, got, "three\n")
		}
		waitDetached(t, d.client, "v3")
	}

	// A clone of a snapshot, from an inline spec.
	if _, err := d.client.CreateSnapshot(ctx, "v1", "s1"); err != nil {
		t.Fatal(err)
	}
	const clone = "snapshot=v1@s1,name=v1c"
	e.create(clone)
	if got := e.mustDocker(e.runArgs([]string{"--rm", "-v", clone + ":/data"}, "cat", "/data/f")...); got != "hello\n" {
		t.Errorf("clone of v1@s1 holds %q, want %q", got, "hello\n")
	}

	// Two containers at once share one attachment.
	id := strings.TrimSpace(e.mustDocker(e.runArgs([]string{"-d", "-v", "v1:/data"}, "sleep", "120")...))
	att := inspect("v1").Attachment
	if att == nil || att.Node != "n1" {
		t.Fatalf("v1 with a running container: attachment %+v, want one on n1", att)
	}
	if got := e.mustDocker("volume", "inspect", "--format", "{{.Mountpoint}}", "v1"); strings.TrimSpace(got) != att.MountPath {
		t.Errorf("docker volume inspect v1 while mounted: mountpoint %q, want %q", strings.TrimSpace(got), att.MountPath)
	}
	got = e.mustDocker(e.runArgs([]string{"--rm", "-v", "v1:/data"}, "sh", "-c", "cat /data/f && echo second > /data/g && sync")...)
	if got != "hello\n" {
		t.Errorf("second container on v1 read %q", got)
	}
	after := inspect("v1").Attachment
	if after == nil || after.Epoch != att.Epoch || after.MountPath != att.MountPath || !after.Since.Equal(att.Since) {
		t.Fatalf("v1 after the second container stopped, the first still running: attachment %+v, want the first's %+v unchanged", after, att)
	}
	if n := mountCount(t, att.MountPath); n != 1 {
		t.Errorf("%s is mounted %d times on the host, want once", att.MountPath, n)
	}
	if got := e.mustDocker("exec", id, "cat", "/data/g"); got != "second\n" {
		t.Errorf("the first container reads %q from the file the second wrote", got)
	}
	out, err := e.docker("volume", "rm", "v1")
	if err == nil || !strings.Contains(out, "Error response from daemon:") || !strings.Contains(out, "in use") {
		t.Errorf("docker volume rm of a volume in use: %v: %q; want an in-use error", err, out)
	}
	inspect("v1") // still there
	e.mustDocker("rm", "-f", id)
	waitDetached(t, d.client, "v1")
	if n := mountCount(t, att.MountPath); n != 0 {
		t.Errorf("%s is still mounted %d times after the last container stopped", att.MountPath, n)
	}

	// A volume attached outside Docker cannot be removed through it.
	if _, err := d.client.AttachVolume(ctx, "v2", api.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err = e.docker("volume", "rm", v2)
	if err == nil || !strings.Contains(out, "Error response from daemon:") || !strings.Contains(out, "attached on node n1") {
		t.Errorf("docker volume rm of a volume attached by the CLI: %v: %q; want an error naming n1", err, out)
	}
	if err := d.client.DetachVolume(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	e.mustDocker("volume", "rm", v2)
	e.untrack(v2)
	if _, err := d.client.InspectVolume(ctx, "v2"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("v2 after docker volume rm: %v, want not found", err)
	}

	// Bad input: refused, saying why, and nothing is created.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--opt", "bogus=1", "bad1"}, `unknown option "bogus"`},
		{[]string{"--opt", "size=lots", "bad2"}, `size "lots"`},
		{[]string{"--opt", "repl=2", "bad3"}, "needs a size"},
		{[]string{"size=64M,repl=1"}, "has no name="},
		{[]string{"--opt", "fs=xfs", "--opt", "size=64M", "bad4"}, "300MiB minimum"},
	} {
		args := append([]string{"volume", "create", "-d", e.plugin}, c.args...)
		out, err := e.docker(args...)
		if err == nil {
			e.track(c.args[len(c.args)-1])
			t.Errorf("docker %s succeeded:\n%s", strings.Join(args, " "), out)
			continue
		}
		if !strings.Contains(out, "Error response from daemon:") || !strings.Contains(out, c.want) {
			t.Errorf("docker %s: %q; want an error from the daemon containing %q", strings.Join(args, " "), out, c.want)
		}
		t.Logf("docker volume create %s: %s", strings.Join(c.args, " "), strings.TrimSpace(out))
	}
	vols, err := d.client.ListVolumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vols {
		names = append(names, v.Name)
	}
	slices.Sort(names)
	if want := []string{"v1", "v1c", "v3", "vx"}; !slices.Equal(names, want) {
		t.Errorf("ballast volumes after the bad requests: %v, want %v", names, want)
	}
	ls = e.mustDocker("volume", "ls", "--filter", "driver="+e.plugin, "--format", "{{.Name}}")
	if got := strings.Fields(ls); !slices.Equal(got, []string{"v1", "v1c", "v3", "vx"}) {
		t.Errorf("docker volume ls after the bad requests: %v", got)
	}
}

// TestDockerFollow: a container on node a writes to a repl 2 volume and
// is still running when a dies (SIGKILL); node b then serves the plugin
// socket Docker knows the volume's driver by (one Docker engine plays the
// engines of both nodes), and a container started there finds every byte:
// b's plugin takes the volume over once a's lease has expired. The dead
// container's unmount, and a's return, change nothing.
func TestDockerFollow(t *testing.T) {
	e := newDockerEnv(t)
	nodes, _ := startCluster(t, 2)
	a, b := nodes[0], nodes[1]
	// Only a serves the plugin to begin with.
	a.stop()
	a.args = append(a.args, "--docker-socket", e.socket)
	a.start()
	e.serving(a)
	ctx := a.ctx()

	e.create("v1", "--opt", "size=256M", "--opt", "repl=2")
	v, err := a.client.InspectVolume(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	var where []string
	for _, r := range v.Replicas {
		where = append(where, r.Node)
	}
	slices.Sort(where)
	if !slices.Equal(where, []string{"a", "b"}) {
		t.Fatalf("v1's replicas are on %v, want a and b", where)
	}

	id := strings.TrimSpace(e.mustDocker(e.runArgs([]string{"-d", "-v", "v1:/data"}, "sh", "-c",
		"dd if=/dev/urandom of=/data/file bs=1M count=64 conv=fsync 2>/dev/null && sync && sha256sum /data/file > /data/file.sha && sync && touch /data/done && sleep 3600")...))
	var want string
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		if out, err := e.docker("exec", id, "cat", "/data/done", "/data/file.sha"); err == nil && len(strings.Fields(out)) > 0 {
			want = strings.Fields(out)[0]
			break
		}
		if time.Since(start) > 90*time.Second {
			out, _ := e.docker("logs", id)
			t.Fatalf("the writer container did not finish within 90s:\n%s", out)
		}
	}
	if v, err := a.client.InspectVolume(ctx, "v1"); err != nil || v.Attachment == nil || v.Attachment.Node != "a" {
		t.Fatalf("v1 while the writer runs on a: %+v, %v; want it attached on a", v, err)
	}

	a.kill9()
	died := time.Now()
	b.stop()
	b.args = append(b.args, "--docker-socket", e.socket)
	b.start()
	e.serving(b)
	var got string
	for attempt := 1; ; attempt++ {
		out, err := e.docker(e.runArgs([]string{"--rm", "-v", "v1:/data"}, "sha256sum", "/data/file")...)
		if err == nil && len(strings.Fields(out)) > 0 {
			got = strings.Fields(out)[0]
			t.Logf("a container on b read v1 %s after a died (attempt %d)", time.Since(died).Round(time.Millisecond), attempt)
			break
		}
		if err == nil || !strings.Contains(out, "in use") || time.Since(died) > 60*time.Second {
			t.Fatalf("docker run on b after a died: %v\n%s", err, out)
		}
		t.Logf("docker run on b, %s after a died: %s", time.Since(died).Round(time.Millisecond), strings.TrimSpace(out))
		time.Sleep(time.Second)
	}
	if got != want {
		t.Fatalf("v1's file has sha256 %s on b, the writer on a recorded %s", got, want)
	}
	v, err = b.client.InspectVolume(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Epoch < 2 {
		t.Errorf("v1's epoch is %d after b took it over, want it raised", v.Epoch)
	}
	waitDetached(t, b.client, "v1")
	// The writer's container, still there with a's dead mount, goes: its
	// unmount reaches b, which does not know its mount ID.
	e.mustDocker("rm", "-f", id)
	if v, err := b.client.InspectVolume(ctx, "v1"); err != nil || v.Attachment != nil {
		t.Errorf("v1 after the old container was removed: %+v, %v", v, err)
	}

	// a comes back (without the plugin, which b serves now); with every
	// replica's node up, the volume can be removed through Docker.
	a.args = append(a.args, "--docker-socket=")
	a.start()
	e.mustDocker("volume", "rm", "v1")
	e.untrack("v1")
	if _, err := b.client.InspectVolume(ctx, "v1"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("v1 after docker volume rm: %v, want not found", err)
	}
}
