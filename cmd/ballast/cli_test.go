package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/api"
)

// TestGroupCommandsNeedASubcommand: a group command (ballast, ballast pool,
// ...) run alone or with an unknown subcommand exits non-zero and prints
// its usage, so a script cannot take it for success; --help exits 0.
func TestGroupCommandsNeedASubcommand(t *testing.T) {
	for _, args := range [][]string{{}, {"pool"}, {"volume"}, {"snapshot"}, {"cluster"}, {"workload"}, {"pool", "bogus"}, {"volume", "bogus"}} {
		out, err := exec.Command(ballastBin, args...).CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("ballast %s: %v, want a non-zero exit\n%s", strings.Join(args, " "), err, out)
			continue
		}
		if !strings.Contains(string(out), "Usage:") {
			t.Errorf("ballast %s printed no usage:\n%s", strings.Join(args, " "), out)
		}
		if len(args) == 2 && !strings.Contains(string(out), `unknown command "bogus"`) {
			t.Errorf("ballast %s does not name the unknown command:\n%s", strings.Join(args, " "), out)
		}
	}
	for _, args := range [][]string{{"--help"}, {"pool", "--help"}, {"volume", "create", "--help"}} {
		if out, err := exec.Command(ballastBin, args...).CombinedOutput(); err != nil || !strings.Contains(string(out), "Usage:") {
			t.Errorf("ballast %s: %v, want help and exit 0\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestRelativePaths: a daemon started with relative paths (data dir, pool
// dir, its socket, the Docker and CSI sockets) serves them where they name
// from its working directory, and the CLI reaches it through a relative
// socket path, by flag and by BALLAST_SOCKET (gRPC would read
// unix://./b.sock as a host ".").
func TestRelativePaths(t *testing.T) {
	d := newDaemon(t, "n1", nil)
	d.cwd = d.dir
	d.args = []string{"daemon", "--node-id", "n1", "--data-dir", "data", "--pool-dir", "./disk1",
		"--socket", "./b.sock", "--docker-socket", "plugins/docker.sock", "--csi-endpoint", "unix:csi.sock"}
	d.socket = filepath.Join(d.dir, "b.sock")
	d.start()

	for _, name := range []string{"b.sock", "plugins/docker.sock", "csi.sock"} {
		fi, err := os.Stat(filepath.Join(d.dir, name))
		if err != nil || fi.Mode().Type() != fs.ModeSocket {
			t.Errorf("socket %s in the daemon's working directory: %v", name, err)
		}
	}
	cli := func(env string, args ...string) string {
		t.Helper()
		cmd := exec.Command(ballastBin, args...)
		cmd.Dir = d.dir
		cmd.Env = append(os.Environ(), "BALLAST_SOCKET="+env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("BALLAST_SOCKET=%s ballast %s: %v\n%s", env, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := cli("./b.sock", "pool", "list", "--json")
	var pools []api.Pool
	if err := json.Unmarshal([]byte(out), &pools); err != nil || len(pools) != 1 || pools[0].Dir != filepath.Join(d.dir, "disk1") {
		t.Fatalf("pool list through ./b.sock: %v, %+v; want the one pool dir %s/disk1", err, pools, d.dir)
	}
	cli("b.sock", "volume", "create", "v", "--size", "64M")
	path := strings.TrimSpace(cli("", "--socket", "./b.sock", "volume", "attach", "v"))
	if want := filepath.Join(d.dir, "data", "mounts", "v"); path != want {
		t.Errorf("volume attached at %q, want %q (under the relative data dir, made absolute)", path, want)
	}
	if err := os.WriteFile(filepath.Join(path, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cli("../"+filepath.Base(d.dir)+"/b.sock", "volume", "detach", "v")
}
