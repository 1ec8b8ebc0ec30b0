package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
	"github.com/ballast-io/ballast/pool/testenv"
)

// TestBackupRestore, through the CLI against a real S3 server (versitygw):
// a target is refused with wrong credentials and added with the right
// ones; a backup of a mounted volume and an incremental one after 8 MiB
// more (which reads and uploads about that, not the volume); each
// restores to a new volume byte-identical to its snapshot (sha256 of the
// devices) with fio's data verified, the older after the newer too; a
// delete keeps what the other backup needs; another cluster, given only
// the bucket, lists and restores what is left (disaster recovery).
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("a cluster secret for the backup tests"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--cluster-secret-file", secret)
	s3 := testenv.StartS3(t, "ballast-test")
	cred := filepath.Join(dir, "credentials")
	wrong := filepath.Join(dir, "wrong")
	writeFile(t, cred, fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s3.AccessKey, s3.SecretKey))
	writeFile(t, wrong, fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = nope\n", s3.AccessKey))
	cli := func(args ...string) string {
		t.Helper()
		out, err := d.cli(args...)
		if err != nil {
			t.Fatalf("ballast %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	if out, err := d.cli("backup", "target", "add", "s3", "s3://ballast-test/c1", "--endpoint", s3.Endpoint, "--insecure", "--credentials-file", wrong); err == nil || !strings.Contains(out, "access denied") {
		t.Fatalf("target with wrong credentials: %v\n%s", err, out)
	}
	if out, err := d.cli("backup", "target", "add", "s3", "s3:/ballast-test", "--endpoint", s3.Endpoint); err == nil || !strings.Contains(out, "bucket") {
		t.Fatalf("target with a bad URL: %v\n%s", err, out)
	}
	cli("backup", "target", "add", "s3", "s3://ballast-test/c1", "--endpoint", s3.Endpoint, "--insecure", "--credentials-file", cred)
	if out := cli("backup", "target", "list"); !strings.Contains(out, "s3://ballast-test/c1") || strings.Contains(out, s3.SecretKey) {
		t.Fatalf("target list:\n%s", out)
	}

	ctx := d.ctx()
	cli("volume", "create", "db", "--size", "256M")
	a, err := d.client.AttachVolume(ctx, "db", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(a.MountPath, "one"), "48M", 7)
	cli("snapshot", "create", "db", "s1")
	b1 := backupOf(t, d, "db", "--target", "s3", "--snapshot", "s1")
	if b1.Snapshot != "s1" {
		t.Errorf("backup of snapshot s1 names snapshot %q", b1.Snapshot)
	}
	if b1.Parent != "" || b1.Uploaded < 48<<20 || b1.Done != b1.Size {
		t.Fatalf("first backup %+v: want no parent, the whole volume read, 48 MiB or more uploaded", b1)
	}
	fioWrite(t, filepath.Join(a.MountPath, "two"), "8M", 8)
	b2 := backupOf(t, d, "db")
	if b2.Parent != b1.ID {
		t.Errorf("second backup's parent is %q, want %s", b2.Parent, b1.ID)
	}
	// 8 MiB of data and the filesystem's metadata and journal: far from
	// the 256 MiB volume or the 48 MiB of the first.
	if b2.Uploaded > 24<<20 || b2.Total > 48<<20 {
		t.Errorf("incremental backup read %d and uploaded %d bytes after 8 MiB written; want far less than the volume", b2.Total, b2.Uploaded)
	}
	if err := d.client.DetachVolume(ctx, "db"); err != nil {
		t.Fatal(err)
	}

	// Each backup restores to its snapshot, byte for byte: the newer,
	// then the older, capped at 16 MiB/s: its 48 MiB and more take 2 s
	// or more, and the CLI shows the progress its record carries.
	for _, b := range []*api.Backup{b2, b1} {
		to := "r-" + b.Snapshot
		args := []string{"backup", "restore", b.ID, "--to", to}
		if b == b1 {
			args = append(args, "--rate-limit", "16M")
		}
		t0 := time.Now()
		out := cli(args...)
		if !strings.Contains(out, "restored") {
			t.Fatalf("restore said %q", out)
		}
		if took := time.Since(t0); b == b1 && (took < 2*time.Second || !strings.Contains(out, "restore of "+to+": ")) {
			t.Errorf("restore of %d bytes capped at 16 MiB/s took %s and showed:\n%s\nwant 2 s or more, and its progress", b.Uploaded, took, out)
		}
		cli("volume", "create", "c-"+b.Snapshot, "--from-snapshot", "db@"+b.Snapshot)
		if got, want := deviceSum(t, d, to), deviceSum(t, d, "c-"+b.Snapshot); got != want {
			t.Errorf("restore of %s differs from its snapshot %s", b.ID, b.Snapshot)
		}
		ra, err := d.client.AttachVolume(ctx, to, api.AttachOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fioVerify(t, filepath.Join(ra.MountPath, "one"), "48M", 7)
		_, err = os.Stat(filepath.Join(ra.MountPath, "two"))
		if b == b2 {
			fioVerify(t, filepath.Join(ra.MountPath, "two"), "8M", 8)
		} else if !os.IsNotExist(err) {
			t.Errorf("the restore of the first backup has the file written after it: %v", err)
		}
		if err := d.client.DetachVolume(ctx, to); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := d.cli("backup", "restore", b1.ID, "--to", "r-"+b2.Snapshot); err == nil || !strings.Contains(out, "exists") {
		t.Errorf("restore onto an existing volume: %v\n%s", err, out)
	}

	cli("backup", "delete", b1.ID)
	var left []api.Backup
	if err := json.Unmarshal([]byte(cli("backup", "list", "db", "--json")), &left); err != nil || len(left) != 1 || left[0].ID != b2.ID {
		t.Fatalf("backups after deleting the first: %+v, %v", left, err)
	}
	d.stop()

	// Disaster recovery: another cluster, with nothing of this one but the
	// bucket, lists the backup there and restores it.
	secret2 := filepath.Join(dir, "secret2")
	writeFile(t, secret2, "the other cluster's own secret, unrelated")
	d2 := startDaemon(t, "--cluster-secret-file", secret2)
	if out, err := d2.cli("backup", "target", "add", "s3", "s3://ballast-test/c1", "--endpoint", s3.Endpoint, "--insecure", "--credentials-file", cred); err != nil {
		t.Fatalf("target add on the second cluster: %v\n%s", err, out)
	}
	var held []api.Backup
	out, err := d2.cli("backup", "list", "--target", "s3", "--json")
	if err != nil || json.Unmarshal([]byte(out), &held) != nil || len(held) != 1 || held[0].ID != b2.ID || held[0].Volume != "db" {
		t.Fatalf("the second cluster lists in the bucket %+v (%v)\n%s", held, err, out)
	}
	if out, err := d2.cli("backup", "restore", b2.ID, "--to", "again"); err != nil {
		t.Fatalf("restore on the second cluster: %v\n%s", err, out)
	}
	ctx2 := d2.ctx()
	ra, err := d2.client.AttachVolume(ctx2, "again", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioVerify(t, filepath.Join(ra.MountPath, "one"), "48M", 7)
	fioVerify(t, filepath.Join(ra.MountPath, "two"), "8M", 8)
	if err := d2.client.DetachVolume(ctx2, "again"); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptedBackup: an encrypted volume backs up to a file:// target
// as ciphertext (no file of the target holds a known pattern written to
// it) and restores to a volume that opens with the same secret. One with a
// passphrase given per call restores to a volume that opens only with
// that passphrase.
func TestEncryptedBackup(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "a cluster secret for the backup tests")
	d := startDaemon(t, "--cluster-secret-file", secret)
	pass := filepath.Join(dir, "pass")
	writeFile(t, pass, "backup-test-passphrase")
	cli := func(args ...string) string {
		t.Helper()
		out, err := d.cli(args...)
		if err != nil {
			t.Fatalf("ballast %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	target := filepath.Join(dir, "target")
	if out, err := d.cli("backup", "target", "add", "dir", "file://relative/dir"); err == nil || !strings.Contains(out, "file:///dir") {
		t.Fatalf("file target with a relative path: %v\n%s", err, out)
	}
	cli("backup", "target", "add", "dir", "file://"+target)
	cli("secret", "set", "k", "--from-file", pass)
	cli("volume", "create", "enc", "--size", "64M", "--encrypted", "--secret-key", "k")
	ctx := d.ctx()
	a, err := d.client.AttachVolume(ctx, "enc", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	marker := bytes.Repeat([]byte("BALLAST-BACKUP-MARKER-"), 50<<10)
	writeSynced(t, filepath.Join(a.MountPath, "marker"), marker)
	b := backupOf(t, d, "enc", "--target", "dir")
	if err := d.client.DetachVolume(ctx, "enc"); err != nil {
		t.Fatal(err)
	}
	if files := filesHolding(t, target, []byte("BALLAST-BACKUP-MARKER")); len(files) > 0 {
		t.Errorf("the volume's data in clear in the target: %v", files)
	}
	cli("backup", "restore", b.ID, "--to", "enc2")
	ra, err := d.client.AttachVolume(ctx, "enc2", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(ra.MountPath, "marker")); err != nil || !bytes.Equal(got, marker) {
		t.Errorf("the restored file differs (%v)", err)
	}
	if err := d.client.DetachVolume(ctx, "enc2"); err != nil {
		t.Fatal(err)
	}

	own := []byte("a passphrase of its own")
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "own", Size: 64 << 20, Encrypted: true}, api.CreateOptions{Passphrase: own}); err != nil {
		t.Fatal(err)
	}
	if a, err = d.client.AttachVolume(ctx, "own", api.AttachOptions{Passphrase: own}); err != nil {
		t.Fatal(err)
	}
	writeSynced(t, filepath.Join(a.MountPath, "marker"), marker)
	b = backupOf(t, d, "own", "--target", "dir")
	if err := d.client.DetachVolume(ctx, "own"); err != nil {
		t.Fatal(err)
	}
	if files := filesHolding(t, target, []byte("BALLAST-BACKUP-MARKER")); len(files) > 0 {
		t.Errorf("the data of the volume with its own passphrase in clear in the target: %v", files)
	}
	cli("backup", "restore", b.ID, "--to", "own2")
	if _, err := d.client.AttachVolume(ctx, "own2", api.AttachOptions{}); err == nil || !strings.Contains(err.Error(), "given per call") {
		t.Fatalf("attach of the restored volume without its passphrase: %v", err)
	}
	if ra, err = d.client.AttachVolume(ctx, "own2", api.AttachOptions{Passphrase: own}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(ra.MountPath, "marker")); err != nil || !bytes.Equal(got, marker) {
		t.Errorf("the file restored from the volume with its own passphrase differs (%v)", err)
	}
	if err := d.client.DetachVolume(ctx, "own2"); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// backupOf backs vol up with the CLI (to target s3 unless args say) and
// answers the finished backup.
func backupOf(t *testing.T, d *daemon, vol string, args ...string) *api.Backup {
	t.Helper()
	if len(args) == 0 {
		args = []string{"--target", "s3"}
	}
	out, err := d.cli(append([]string{"backup", "create", vol, "--json"}, args...)...)
	if err != nil {
		t.Fatalf("backup create %s: %v\n%s", vol, err, out)
	}
	var b api.Backup
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("backup create --json: %v\n%s", err, out)
	}
	if b.State != api.BackupDone {
		t.Fatalf("backup %+v is not done", b)
	}
	return &b
}

// deviceSum attaches vol as a raw block device and answers the sha256 of
// its whole content.
func deviceSum(t *testing.T, d *daemon, vol string) string {
	t.Helper()
	a, err := d.client.AttachVolume(d.ctx(), vol, api.AttachOptions{Block: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := d.client.DetachVolume(d.ctx(), vol); err != nil {
			t.Error(err)
		}
	}()
	return sha(t, a.Device)
}

// fileTargetDaemon starts a daemon with a file:// backup target named
// "dir" and a mounted 128 MiB volume v, and answers the mount path.
func fileTargetDaemon(t *testing.T) (*daemon, string) {
	t.Helper()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "a cluster secret for the backup tests")
	d := startDaemon(t, "--cluster-secret-file", secret)
	if out, err := d.cli("backup", "target", "add", "dir", "file://"+filepath.Join(dir, "target")); err != nil {
		t.Fatalf("target add: %v\n%s", err, out)
	}
	if out, err := d.cli("volume", "create", "v", "--size", "128M"); err != nil {
		t.Fatalf("volume create: %v\n%s", err, out)
	}
	a, err := d.client.AttachVolume(d.ctx(), "v", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d, a.MountPath
}

// TestBackupBaseNameReused: the base of an incremental backup is the
// parent's snapshot itself, not a later one of the same name. The parent
// was taken of snapshot s1; s1 is deleted, data written, s1 taken again:
// the next backup reads everything (the layers since the new s1 do not
// show what changed since the old one), and restores every file.
func TestBackupBaseNameReused(t *testing.T) {
	d, mnt := fileTargetDaemon(t)
	cli := func(args ...string) {
		t.Helper()
		if out, err := d.cli(args...); err != nil {
			t.Fatalf("ballast %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	fioWrite(t, filepath.Join(mnt, "f1"), "4M", 1)
	cli("snapshot", "create", "v", "s1")
	backupOf(t, d, "v", "--target", "dir", "--snapshot", "s1")
	fioWrite(t, filepath.Join(mnt, "f2"), "4M", 2)
	cli("snapshot", "delete", "v", "s1")
	cli("snapshot", "create", "v", "s1")
	fioWrite(t, filepath.Join(mnt, "f3"), "4M", 3)
	b := backupOf(t, d, "v", "--target", "dir")
	if b.Total != b.Size {
		t.Errorf("the backup after s1 was taken again read %d of %d bytes; want all (its parent's base is gone)", b.Total, b.Size)
	}
	if err := d.client.DetachVolume(d.ctx(), "v"); err != nil {
		t.Fatal(err)
	}
	cli("backup", "restore", b.ID, "--to", "r")
	a, err := d.client.AttachVolume(d.ctx(), "r", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range []string{"f1", "f2", "f3"} {
		fioVerify(t, filepath.Join(a.MountPath, f), "4M", i+1)
	}
	if err := d.client.DetachVolume(d.ctx(), "r"); err != nil {
		t.Fatal(err)
	}
}

// TestBackupDaemonKilled: a backup running when its daemon is killed is
// marked failed by the restarted daemon, with its own snapshot gone; the
// backup taken again uploads only what the first did not, and restores.
func TestBackupDaemonKilled(t *testing.T) {
	d, mnt := fileTargetDaemon(t)
	fioWrite(t, filepath.Join(mnt, "data"), "48M", 5)
	// 48 MiB at 8 MiB/s: it runs for seconds.
	out, err := d.cli("backup", "create", "v", "--target", "dir", "--rate-limit", "8M", "--no-wait", "--json")
	if err != nil {
		t.Fatalf("backup create: %v\n%s", err, out)
	}
	var first api.Backup
	if err := json.Unmarshal([]byte(out), &first); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the backup to upload something", func() (bool, string) {
		bs, err := d.client.ListBackups(d.ctx(), "v")
		if err != nil || len(bs) != 1 {
			return false, fmt.Sprint(bs, err)
		}
		return bs[0].Uploaded >= 8<<20, fmt.Sprintf("%+v", bs[0])
	})
	d.kill9()
	d.start()
	bs, err := d.client.ListBackups(d.ctx(), "v")
	if err != nil || len(bs) != 1 || bs[0].State != api.BackupFailed || !strings.Contains(bs[0].Error, "stopped") {
		t.Fatalf("after the restart: %+v, %v; want the backup failed, saying the daemon stopped", bs, err)
	}
	waitFor(t, 30*time.Second, "the failed backup's own snapshot to go", func() (bool, string) {
		snaps, err := d.client.ListSnapshots(d.ctx(), "v")
		return err == nil && len(snaps) == 0, fmt.Sprint(snaps, err)
	})
	again := backupOf(t, d, "v", "--target", "dir")
	if again.Uploaded > 48<<20-6<<20 {
		t.Errorf("the backup taken again uploaded %d bytes; the first had sent at least 8 MiB of the 48", again.Uploaded)
	}
	if err := d.client.DetachVolume(d.ctx(), "v"); err != nil {
		t.Fatal(err)
	}
	if out, err := d.cli("backup", "restore", again.ID, "--to", "r"); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	a, err := d.client.AttachVolume(d.ctx(), "r", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioVerify(t, filepath.Join(a.MountPath, "data"), "48M", 5)
	if err := d.client.DetachVolume(d.ctx(), "r"); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentBackupsReleaseSnapshots: two backups of a volume run at
// once (rate-limited so they overlap), both on the same parent. Once a
// third is done, only its own snapshot is left: the base of the next
// backup. Before, the older of the two kept its snapshot for good.
func TestConcurrentBackupsReleaseSnapshots(t *testing.T) {
	d := startDaemon(t)
	ctx := d.ctx()
	if out, err := d.cli("backup", "target", "add", "dir", "file://"+filepath.Join(t.TempDir(), "target")); err != nil {
		t.Fatalf("target add: %v\n%s", err, out)
	}
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "v", Size: 128 << 20}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err := d.client.AttachVolume(ctx, "v", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(a.MountPath, "one"), "16M", 3)
	backupOf(t, d, "v", "--target", "dir") // the parent of the next two
	fioWrite(t, filepath.Join(a.MountPath, "two"), "16M", 4)
	var running []*api.Backup
	for range 2 {
		b, err := d.client.CreateBackup(ctx, api.BackupSpec{Volume: "v", Target: "dir", RateLimit: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		running = append(running, b)
	}
	for _, b := range running {
		if _, err := waitBackup(ctx, d.client, b, io.Discard, true); err != nil {
			t.Fatal(err)
		}
	}
	if running[0].Parent == "" || running[0].Parent != running[1].Parent {
		t.Fatalf("the two backups have parents %q and %q; want the same one", running[0].Parent, running[1].Parent)
	}
	last := backupOf(t, d, "v", "--target", "dir")
	snaps, err := d.client.ListSnapshots(ctx, "v")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range snaps {
		names = append(names, s.Name)
	}
	if len(names) != 1 || names[0] != last.Snapshot {
		t.Fatalf("snapshots left: %v; want only %s, the last backup's", names, last.Snapshot)
	}
	fioVerify(t, filepath.Join(a.MountPath, "two"), "16M", 4)
}
