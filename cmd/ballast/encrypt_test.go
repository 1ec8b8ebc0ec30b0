package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"golang.org/x/sys/unix"
)

// TestEncryptedVolume: an encrypted volume made with the CLI holds data
// (fio verify=crc32c, a file of a known pattern) that nothing on disk shows
// in clear, not the pool dirs, etcd or the log, nor the passphrase; a
// daemon under another cluster secret cannot open its key, and its attach
// fails and changes nothing; under the right one the data reads back.
func TestEncryptedVolume(t *testing.T) {
	dir := t.TempDir()
	const pass = "correct-horse-battery-staple-9"
	secret, other := filepath.Join(dir, "secret"), filepath.Join(dir, "other")
	for file, s := range map[string]string{secret: "a cluster secret for the tests", other: "another cluster's secret 00000"} {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	d := newDaemon(t, "n1", []string{"disk1", "disk2"}, "--cluster-secret-file", secret)
	d.start()
	// The CLI gets the passphrase from its environment.
	cli := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(ballastBin, append([]string{"--socket", d.socket}, args...)...)
		cmd.Env = append(os.Environ(), "DB_PASS="+pass)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ballast %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out, err := d.cli("volume", "create", "enc", "--size", "64M", "--encrypted"); err == nil || !strings.Contains(out, "needs a passphrase") {
		t.Fatalf("encrypted volume without a secret key: %v\n%s", err, out)
	}
	cli("secret", "set", "db", "--from-env", "DB_PASS")
	if out := cli("volume", "create", "enc", "--size", "64M", "--repl", "2", "--encrypted", "--secret-key", "db"); !strings.Contains(out, "encrypted under secret db") {
		t.Fatalf("create said %q", out)
	}
	if out := cli("secret", "list"); !strings.Contains(out, "db") || !strings.Contains(out, "enc") || strings.Contains(out, pass) {
		t.Fatalf("secret list:\n%s", out)
	}

	ctx := d.ctx()
	a, err := d.client.AttachVolume(ctx, "enc", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	marker := bytes.Repeat([]byte("BALLAST-PLAINTEXT-MARKER-"), 40<<10)
	writeSynced(t, filepath.Join(a.MountPath, "marker"), marker)
	fioWrite(t, filepath.Join(a.MountPath, "fio"), "16M", 7)
	if err := d.client.DetachVolume(ctx, "enc"); err != nil {
		t.Fatal(err)
	}
	d.stop() // etcd's files and the log are complete

	// Nothing under the daemon's dir (pool dirs, etcd, log) holds the
	// pattern or the passphrase.
	if files := filesHolding(t, d.dir, []byte("BALLAST-PLAINTEXT-MARKER")); len(files) > 0 {
		t.Errorf("the volume's data in clear in %v", files)
	}
	if files := filesHolding(t, d.dir, []byte(pass)); len(files) > 0 {
		t.Errorf("the passphrase in clear in %v", files)
	}

	// Under another cluster secret the key does not open: the attach
	// fails, naming why, and the volume's epoch stays.
	d.args = slices.Clone(d.args)
	i := slices.Index(d.args, secret)
	d.args[i] = other
	d.start()
	v, err := d.client.InspectVolume(ctx, "enc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.client.AttachVolume(ctx, "enc", api.AttachOptions{}); err == nil || !strings.Contains(err.Error(), "another cluster secret") {
		t.Fatalf("attach under another cluster secret: %v", err)
	}
	if after, err := d.client.InspectVolume(ctx, "enc"); err != nil || after.Epoch != v.Epoch || after.Attachment != nil {
		t.Fatalf("a refused attach changed the volume: %+v, %v (epoch was %d)", after, err, v.Epoch)
	}
	d.stop()

	d.args[i] = secret
	d.start()
	if a, err = d.client.AttachVolume(ctx, "enc", api.AttachOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(a.MountPath, "marker"))
	if err != nil || !bytes.Equal(got, marker) {
		t.Fatalf("the file read back differs (%v)", err)
	}
	fioVerify(t, filepath.Join(a.MountPath, "fio"), "16M", 7)
	if err := d.client.DetachVolume(ctx, "enc"); err != nil {
		t.Fatal(err)
	}
}

// filesHolding lists the regular files under dir that contain b, on
// dir's own filesystem: the FUSE mounts and the volumes' filesystems
// mounted below it show volumes as their users see them, and are passed
// over.
func filesHolding(t *testing.T, dir string, b []byte) []string {
	t.Helper()
	var root unix.Stat_t
	if err := unix.Stat(dir, &root); err != nil {
		t.Fatal(err)
	}
	var found []string
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if e != nil && e.IsDir() {
				return fs.SkipDir // a dead daemon's FUSE mount, say
			}
			return err
		}
		if e.IsDir() {
			var st unix.Stat_t
			if err := unix.Stat(path, &st); err != nil || st.Dev != root.Dev {
				return fs.SkipDir // a mount
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, b) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestSecretChange: a secret's change rewraps the keys of the volumes
// using it (a volume whose key kept the old wrapping would no longer
// attach: only the new value is tried), and their data reads back, also
// after a daemon restart.
func TestSecretChange(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "a cluster secret for the tests")
	d := startDaemon(t, "--cluster-secret-file", secret)
	env := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(ballastBin, append([]string{"--socket", d.socket}, args...)...)
		cmd.Env = append(os.Environ(), "OLD=the first passphrase", "NEW=the second passphrase")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ballast %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	env("secret", "set", "k", "--from-env", "OLD")
	for _, v := range []string{"e1", "e2"} {
		env("volume", "create", v, "--size", "32M", "--encrypted", "--secret-key", "k")
	}
	ctx := d.ctx()
	a, err := d.client.AttachVolume(ctx, "e1", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	writeSynced(t, filepath.Join(a.MountPath, "f"), []byte("before the change"))
	if out := env("secret", "change", "k", "--from-env", "NEW"); !strings.Contains(out, "e1,e2") {
		t.Fatalf("change said %q, want both volumes rewrapped", out)
	}
	if err := d.client.DetachVolume(ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	if out, err := d.cli("secret", "change", "nope", "--from-env", "PATH"); err == nil || !strings.Contains(out, "does not exist") {
		t.Errorf("change of a missing secret: %v\n%s", err, out)
	}
	d.stop()
	d.start()
	for _, v := range []string{"e1", "e2"} {
		a, err := d.client.AttachVolume(ctx, v, api.AttachOptions{})
		if err != nil {
			t.Fatalf("attach %s after the change: %v", v, err)
		}
		if v == "e1" {
			if got, err := os.ReadFile(filepath.Join(a.MountPath, "f")); err != nil || string(got) != "before the change" {
				t.Errorf("file after the change: %q, %v", got, err)
			}
		}
		if err := d.client.DetachVolume(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPassphrasePerCall: an encrypted volume whose passphrase is given
// with the create and each attach (the CLI's --secret-env and
// --secret-file), never stored. A missing or wrong passphrase is refused
// and attaches nothing. Under a keeper, the serving daemon is killed (kill
// -9) while fio writes with verify=crc32c and a writer fsyncs records: the
// restarted daemon re-attaches the volume with the key the keeper kept,
// and neither writer sees an error. Once detached, nothing kept opens it:
// an attach without the passphrase is refused. After a stop of the whole
// daemon (keeper and all) the volume, which no key survived, is detached
// rather than left half-attached, and attaches again with its passphrase,
// its data intact (fio verify, e2fsck). A change of the passphrase makes
// only the new one open it. Neither passphrase nor the
// data in clear is in any file under the daemon's dir (pool, etcd, log).
func TestPassphrasePerCall(t *testing.T) {
	d := startDaemon(t, "--keeper=true", "--restart-grace=60s")
	const pass = "per-call passphrase 7f3a9c"
	passFile := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(passFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli := func(env string, args ...string) (string, error) {
		cmd := exec.Command(ballastBin, append([]string{"--socket", d.socket}, args...)...)
		cmd.Env = append(os.Environ(), "PP="+env)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(env string, args ...string) string {
		t.Helper()
		out, err := cli(env, args...)
		if err != nil {
			t.Fatalf("ballast %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	refused := func(what, want, env string, args ...string) {
		t.Helper()
		if out, err := cli(env, args...); err == nil || !strings.Contains(out, want) {
			t.Fatalf("%s: %v, want an error saying %q\n%s", what, err, want, out)
		}
	}
	refused("encrypted with no passphrase", "needs a passphrase", "", "volume", "create", "pp", "--size", "256M", "--encrypted")
	refused("both --secret-env and --secret-file", "not both", pass, "volume", "create", "pp", "--size", "256M", "--encrypted", "--secret-env", "PP", "--secret-file", passFile)
	if out := must(pass, "volume", "create", "pp", "--size", "256M", "--repl", "2", "--encrypted", "--secret-env", "PP"); !strings.Contains(out, "passphrase given with each attach") {
		t.Fatalf("create said %q", out)
	}
	refused("attach without the passphrase", "given per call", "", "volume", "attach", "pp")
	refused("attach with a wrong passphrase", "does not open its key", "not it", "volume", "attach", "pp", "--secret-env", "PP")
	ctx := d.ctx()
	if v, err := d.client.InspectVolume(ctx, "pp"); err != nil || v.Attachment != nil || v.Epoch != 0 {
		t.Fatalf("after refused attaches: %+v, %v; want it never attached", v, err)
	}
	mnt := must("", "volume", "attach", "pp", "--secret-file", passFile)
	d.wantKeptKeys(1, "attached")
	att, err := d.client.InspectVolume(ctx, "pp")
	if err != nil || att.Attachment == nil {
		t.Fatalf("inspect: %+v, %v", att, err)
	}
	marker := bytes.Repeat([]byte("BALLAST-PER-CALL-MARKER-"), 40<<10)
	writeSynced(t, filepath.Join(mnt, "marker"), marker)
	fioWrite(t, filepath.Join(mnt, "base"), "16M", 5)

	// kill -9 of the serving daemon under I/O: the key comes back from
	// the keeper.
	w := startAckWriter(filepath.Join(mnt, "log"))
	wait := startFio(t, filepath.Join(mnt, "busy"), 9)
	t.Cleanup(w.halt)
	time.Sleep(1500 * time.Millisecond)
	before := w.acked
	old, took := d.restartServing(false)
	a := d.waitTakenOver(ctx, "pp", att.Attachment.Epoch, w)
	t.Logf("daemon %d killed; the new one attached pp again after %s, with the key the keeper kept", old, took().Round(time.Millisecond))
	for deadline := time.Now().Add(30 * time.Second); w.acked < before+20; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the writer acknowledged only %d records in 30 s after the restart (from %d): %v", w.acked, before, w.err)
		}
	}
	w.halt()
	if w.err != nil {
		t.Fatalf("the writer saw an error across the restart: %v", w.err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if a.MountPath != mnt {
		t.Fatalf("after the restart pp is at %s, not %s", a.MountPath, mnt)
	}
	checkRecords(t, filepath.Join(mnt, "log"), w.acked)
	fioVerify(t, filepath.Join(mnt, "base"), "16M", 5)
	d.wantKeptKeys(1, "taken over by the new daemon")

	// Detached, the keeper lets the key go, and nothing opens it.
	must("", "volume", "detach", "pp")
	d.wantKeptKeys(0, "detached")
	refused("attach without the passphrase after a detach", "given per call", "", "volume", "attach", "pp")

	// Attached, then the whole daemon stops: no key survives, so the next
	// daemon detaches the volume instead of failing to serve it.
	must(pass, "volume", "attach", "pp", "--secret-env", "PP")
	d.stop()
	d.start()
	if v, err := d.client.InspectVolume(ctx, "pp"); err != nil || v.Attachment != nil {
		t.Fatalf("after a restart with no key kept: %+v, %v; want it detached", v, err)
	}
	mnt = must(pass, "volume", "attach", "pp", "--secret-env", "PP")
	if got, err := os.ReadFile(filepath.Join(mnt, "marker")); err != nil || !bytes.Equal(got, marker) {
		t.Fatalf("the marker file read back differs (%v)", err)
	}
	fioVerify(t, filepath.Join(mnt, "base"), "16M", 5)
	fsckFrozen(t, mnt)
	must("", "volume", "detach", "pp")

	// A change of the passphrase: from then on only the new one opens it.
	const next = "the next per-call passphrase"
	nextFile := filepath.Join(t.TempDir(), "next")
	if err := os.WriteFile(nextFile, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	refused("change given a wrong passphrase", "does not open its key", "not it", "volume", "change-passphrase", "pp", "--secret-env", "PP", "--new-secret-file", nextFile)
	must(pass, "volume", "change-passphrase", "pp", "--secret-env", "PP", "--new-secret-file", nextFile)
	refused("attach with the passphrase before the change", "does not open its key", pass, "volume", "attach", "pp", "--secret-env", "PP")
	mnt = must(next, "volume", "attach", "pp", "--secret-env", "PP")
	fioVerify(t, filepath.Join(mnt, "base"), "16M", 5)
	must("", "volume", "detach", "pp")
	d.stop()
	for _, p := range []string{pass, next} {
		if files := filesHolding(t, d.dir, []byte(p)); len(files) > 0 {
			t.Errorf("a passphrase in clear in %v", files)
		}
	}
	if files := filesHolding(t, d.dir, []byte("BALLAST-PER-CALL-MARKER")); len(files) > 0 {
		t.Errorf("the volume's data in clear in %v", files)
	}
}

// wantKeptKeys fails the test unless the keeper (d's supervisor process)
// holds want keys: memfds named ballast-key.
func (d *daemon) wantKeptKeys(want int, when string) {
	d.t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", d.cmd.Process.Pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		d.t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if link, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(link, "/memfd:ballast-key") {
			n++
		}
	}
	if n != want {
		d.t.Fatalf("%s: the keeper holds %d keys, want %d", when, n, want)
	}
}
