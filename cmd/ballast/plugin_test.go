package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/testenv"
)

// TestManagedPlugin builds Ballast's Docker managed plugin with
// deploy/docker/build-plugin.sh, as a user would, and runs it on the host's
// Docker engine under a tag of its own: its state in a temp dir (the state
// mount's source set with docker plugin set, never the host's
// /var/lib/ballast), a volume created through it, written by one container
// and read back by another after it grew while detached (resize2fs in the
// plugin's rootfs), mounted through the plugin's propagated mount on a loop
// device backed by the plugin's FUSE file. Then the volume, and the plugin,
// are removed, and nothing of them is left: no mount, no loop device, no
// process, no plugin.
func TestManagedPlugin(t *testing.T) {
	testenv.RequirePrivileged(t)
	testenv.RequireDocker(t)
	// The build script's own needs: it copies these tools from the host.
	testenv.RequireTools(t, "bash", "go", "ldd", "chroot", "mount", "umount", "blkid", "fsck", "e2fsck",
		"mke2fs", "mkfs.ext4", "resize2fs", "mkfs.xfs", "xfs_growfs")

	id := testenv.RandomID(t)
	const repo, node = "ballast-test/ballast", "plugin-test"
	tag := fmt.Sprintf("test-%d-%s", os.Getpid(), id)
	plugin := repo + ":" + tag
	vol := "ballast-plugin-test-" + id
	e := &dockerEnv{t: t, plugin: plugin, image: "ballast-test-busybox:" + id, label: "ballast-test=" + id}
	e.importImage()
	dockerRoot := strings.TrimSpace(e.mustDocker("info", "--format", "{{.DockerRootDir}}"))
	if _, err := e.docker("plugin", "inspect", plugin); err == nil {
		t.Fatalf("a plugin %s is already there", plugin) // not ours: leave it
	}

	state, err := os.MkdirTemp("/var/tmp", "ballast-plugin-")
	if err != nil {
		t.Fatal(err)
	}
	var pluginID string
	pluginGone := func() bool {
		out, err := e.docker("plugin", "inspect", "--format", "{{.Id}}", plugin)
		return err != nil && strings.Contains(strings.ToLower(out), "not found")
	}
	// Cleanups run last registered first: the test's containers and
	// volume, then the plugin, then its state dir.
	t.Cleanup(func() {
		if !pluginGone() {
			t.Errorf("plugin %s is still there; leaving its state dir %s", plugin, state)
			return
		}
		if err := os.RemoveAll(state); err != nil {
			t.Errorf("remove the plugin's state dir: %v", err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() && pluginID != "" {
			t.Logf("the plugin's log (from dockerd's):\n%s", pluginLog(pluginID, 80))
		}
		if pluginGone() {
			return
		}
		e.docker("plugin", "disable", "-f", plugin) // fails if it is not enabled
		if out, err := e.docker("plugin", "rm", "-f", plugin); err != nil {
			t.Errorf("remove plugin %s: %v\n%s", plugin, err, out)
		}
	})
	t.Cleanup(e.removeAll)

	// Build it and register it with docker plugin create.
	script, err := filepath.Abs(filepath.Join("..", "..", "deploy", "docker", "build-plugin.sh"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", script, tag)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "PLUGIN=") || strings.HasPrefix(kv, "OUT=") || strings.HasPrefix(kv, "BALLAST_BIN=")
	}), "PLUGIN="+repo)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", script, tag, err, out)
	}
	t.Logf("build-plugin.sh built and created %s in %s", plugin, time.Since(start).Round(time.Millisecond))
	f := strings.Fields(e.mustDocker("plugin", "inspect", "--format", "{{.Id}} {{.Enabled}}", plugin))
	if len(f) != 2 || f[1] != "false" {
		t.Fatalf("docker plugin inspect %s after create: %q, want its ID and a disabled plugin", plugin, f)
	}
	pluginID = f[0]
	propagated := filepath.Join(dockerRoot, "plugins", pluginID, "propagated-mount")

	// Set it up to run alone, its state in the temp dir, and enable it.
	e.mustDocker("plugin", "set", plugin, "state.source="+state, "args=--node-id "+node)
	start = time.Now()
	e.mustDocker("plugin", "enable", plugin)
	t.Logf("docker plugin enable took %s", time.Since(start).Round(time.Millisecond))
	client, err := api.Dial(filepath.Join(state, "ballast.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	actx, acancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer acancel()
	pools, err := client.ListPools(actx)
	if err != nil {
		t.Fatalf("the plugin's daemon does not answer on %s/ballast.sock: %v", state, err)
	}
	if len(pools) != 1 || pools[0].Node != node || pools[0].Dir != "/var/lib/ballast/pool" {
		t.Errorf("the plugin's pools: %+v, want one, %s's, at /var/lib/ballast/pool", pools, node)
	}
	if _, err := os.Stat(filepath.Join(state, "pool")); err != nil {
		t.Errorf("the plugin keeps its pool elsewhere than in the state dir: %v", err)
	}

	// A volume; one container writes, another reads it back.
	e.create(vol, "--opt", "size=1G")
	if got := strings.TrimSpace(e.mustDocker("volume", "inspect", "--format", "{{.Driver}}", vol)); got != plugin {
		t.Errorf("volume %s has driver %q, want %q", vol, got, plugin)
	}
	if v, err := client.InspectVolume(actx, vol); err != nil || v.Size != 1<<30 || v.FS != "ext4" {
		t.Fatalf("ballast volume %s: %+v, %v; want 1 GiB of ext4", vol, v, err)
	}
	content := "hello from " + id
	start = time.Now()
	out1 := e.mustDocker(e.runArgs([]string{"--rm", "-v", vol + ":/data"}, "sh", "-c",
		"echo '"+content+"' > /data/f && dd if=/dev/urandom of=/data/blob bs=1M count=8 2>/dev/null && sync && sha256sum /data/blob")...)
	t.Logf("the writer container ran in %s", time.Since(start).Round(time.Millisecond))
	wantSum := strings.Fields(out1 + " ")[0]
	waitDetached(t, client, vol)

	// It grows while detached: its ext4 grows (e2fsck, resize2fs in the
	// plugin) when it is next attached.
	if _, err := client.ResizeVolume(actx, vol, 2<<30); err != nil {
		t.Fatalf("resize %s to 2 GiB: %v", vol, err)
	}
	cid := strings.TrimSpace(e.mustDocker(e.runArgs([]string{"-d", "-v", vol + ":/data"}, "sleep", "600")...))
	if got := e.mustDocker("exec", cid, "cat", "/data/f"); got != content+"\n" {
		t.Errorf("the reader container reads %q, the writer wrote %q", got, content+"\n")
	}
	if got := strings.Fields(e.mustDocker("exec", cid, "sha256sum", "/data/blob") + " ")[0]; got != wantSum {
		t.Errorf("the reader container's /data/blob has sha256 %s, the writer's %s", got, wantSum)
	}
	df := strings.Fields(e.mustDocker("exec", cid, "df", "-k", "/data"))
	if kb, err := strconv.ParseInt(df[len(df)-5], 10, 64); err != nil || kb < 3<<19 {
		t.Errorf("the volume's filesystem, grown to 2 GiB while detached: df -k %v; want more than 1.5 GiB", df)
	}

	// Where it is mounted: on a loop device backed by the plugin's FUSE
	// file, in the plugin's propagated mount, which the host sees.
	v, err := client.InspectVolume(actx, vol)
	if err != nil {
		t.Fatal(err)
	}
	if a := v.Attachment; a == nil || a.Node != node || a.MountPath != "/mnt/ballast/"+vol || !strings.HasPrefix(a.Device, "/dev/loop") {
		t.Fatalf("%s with a container on it: attachment %+v, want one on %s at /mnt/ballast/%s on a loop device", vol, a, node, vol)
	}
	hostMnt := filepath.Join(propagated, vol)
	if ms := mountsMatching(t, func(mp, fstype, src string) bool { return mp == hostMnt }); len(ms) == 0 || !strings.Contains(ms[0], " ext4 "+v.Attachment.Device+" ") {
		t.Errorf("the host's mounts at %s: %q, want ext4 on %s", hostMnt, ms, v.Attachment.Device)
	}
	if loops := loopsBacking(vol); !slices.Equal(loops, []string{v.Attachment.Device}) {
		t.Errorf("loop devices backed by %s's FUSE file: %v, want %s", vol, loops, v.Attachment.Device)
	}
	e.mustDocker("rm", "-f", cid)
	waitDetached(t, client, vol)

	// Remove the volume, then the plugin.
	e.mustDocker("volume", "rm", vol)
	e.untrack(vol)
	if _, err := client.InspectVolume(actx, vol); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("%s after docker volume rm: %v, want not found", vol, err)
	}
	start = time.Now()
	e.mustDocker("plugin", "disable", plugin)
	t.Logf("docker plugin disable took %s", time.Since(start).Round(time.Millisecond))
	e.mustDocker("plugin", "rm", plugin)
	if !pluginGone() {
		t.Errorf("docker plugin inspect %s still finds it after docker plugin rm", plugin)
	}
	if ls := e.mustDocker("plugin", "ls", "--format", "{{.Name}}"); slices.Contains(strings.Fields(ls), plugin) {
		t.Errorf("docker plugin ls still lists %s:\n%s", plugin, ls)
	}
	if ls := e.mustDocker("volume", "ls", "-q"); slices.Contains(strings.Fields(ls), vol) {
		t.Errorf("docker volume ls still lists %s", vol)
	}

	// Nothing of it is left (dockerd cleans up after the plugin's exit
	// asynchronously: allow it a moment).
	pluginDir := filepath.Join(dockerRoot, "plugins", pluginID)
	var left []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		left = mountsMatching(t, func(mp, fstype, src string) bool {
			return strings.HasPrefix(mp, pluginDir) || mp == state || strings.HasPrefix(mp, state+"/") ||
				src == "ballast:"+vol || src == hostMnt
		})
		for _, l := range loopsBacking(vol) {
			left = append(left, "loop device "+l+" backed by "+vol+"'s FUSE file")
		}
		for _, p := range procsRootedIn(pluginDir) {
			left = append(left, "process "+p+" in the plugin's rootfs")
		}
		for _, dir := range []string{pluginDir, pluginDir + "-removing"} {
			if _, err := os.Stat(dir); err == nil {
				left = append(left, "directory "+dir)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("left behind by the plugin after docker plugin rm:\n%s", strings.Join(left, "\n"))
	}
}

// mountsMatching returns the lines of this (Docker's) mount namespace's
// mountinfo for which match(mount point, fs type, source) holds.
func mountsMatching(t *testing.T, match func(mp, fstype, src string) bool) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		i := slices.Index(f, "-")
		if i < 0 || len(f) < i+3 || len(f) < 5 {
			continue
		}
		if match(f[4], f[i+1], f[i+2]) {
			out = append(out, line)
		}
	}
	return out
}

// loopsBacking lists the loop devices (/dev/loopN) whose backing file is
// volume vol's FUSE file. The daemon serves it as DATA-DIR/fuse/VOL/disk
// in the plugin's mount namespace, where the kernel names it from.
func loopsBacking(vol string) []string {
	var out []string
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if bf := strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)"); strings.HasSuffix(bf, "/fuse/"+vol+"/disk") {
			out = append(out, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
		}
	}
	return out
}

// procsRootedIn lists the processes (as PID and command line) whose root
// directory lies under dir.
func procsRootedIn(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		root, err := os.Readlink(filepath.Join("/proc", ent.Name(), "root"))
		if err != nil || !strings.HasPrefix(root, dir) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		out = append(out, ent.Name()+" "+strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")))
	}
	return out
}

// pluginLog returns the last n lines dockerd logged from the managed
// plugin with this ID (its daemon's stdout and stderr): from the file
// dockerd's stderr goes to, or else from journald.
func pluginLog(id string, n int) string {
	var text string
	if pid, err := os.ReadFile("/var/run/docker.pid"); err == nil {
		if p, err := os.Readlink("/proc/" + strings.TrimSpace(string(pid)) + "/fd/2"); err == nil && strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "/dev/") {
			if b, err := os.ReadFile(p); err == nil {
				text = string(b)
			}
		}
	}
	if text == "" {
		b, err := exec.Command("journalctl", "-u", "docker", "--no-pager", "--since", "-1h").Output()
		if err != nil {
			return fmt.Sprintf("(dockerd's log not found: no log file on its stderr, journalctl: %v)", err)
		}
		text = string(b)
	}
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, id) {
			lines = append(lines, l)
		}
	}
	return lastLines(strings.Join(lines, "\n"), n)
}
