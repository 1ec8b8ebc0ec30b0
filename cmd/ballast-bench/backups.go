package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// The backup bench: a backupSize volume with backupData MiB of random data
// backed up in full, then again after backupChange MiB more, then restored;
// against cp of the same amount of data between host files of the same
// disk, in the same run.
const (
	backupSize   = 4 << 30
	backupData   = 2048 // MiB
	backupChange = 64   // MiB
	// backupIncrTarget bounds what the incremental backup may upload,
	// against what changed: the filesystem's metadata and journal come
	// with the data.
	backupIncrTarget = 1.5
)

// backupStep is one timed step of the backup bench.
type backupStep struct {
	what     string
	data     int64 // bytes of data the step moved (the volume's written data)
	read     int64 // bytes of the volume read (backups)
	uploaded int64 // bytes sent to the target (backups)
	took     time.Duration
	err      error
}

func (s backupStep) mibs() float64 {
	if s.took <= 0 {
		return 0
	}
	return float64(s.data) / (1 << 20) / s.took.Seconds()
}

// backupBench measures backups and a restore through daemon d to a
// file:// target under dir.
func backupBench(ctx context.Context, d *daemon, dir string, logger *slog.Logger) []backupStep {
	steps := []backupStep{
		{what: "cp of the same data, host file to host file (baseline)", data: backupData << 20},
		{what: fmt.Sprintf("full backup of a %s volume with %d MiB written", sizeString(backupSize), backupData), data: backupData << 20},
		{what: fmt.Sprintf("incremental backup after %d MiB more", backupChange), data: backupChange << 20},
		{what: "restore of the incremental backup to a new volume", data: (backupData + backupChange) << 20},
	}
	fail := func(i int, err error) []backupStep {
		steps[i].err = err
		return steps
	}
	// Baseline: the same amount of random data copied between host files.
	src, dst := filepath.Join(dir, "backup-src.dat"), filepath.Join(dir, "backup-dst.dat")
	defer os.Remove(src)
	defer os.Remove(dst)
	if err := ddWrite(ctx, src, backupData); err != nil {
		return fail(0, err)
	}
	exec.CommandContext(ctx, "sync").Run()
	start := time.Now()
	if out, err := exec.CommandContext(ctx, "sh", "-c", "cp \"$0\" \"$1\" && sync \"$1\"", src, dst).CombinedOutput(); err != nil {
		return fail(0, fmt.Errorf("cp: %w: %s", err, out))
	}
	steps[0].took = time.Since(start)
	os.Remove(src)
	os.Remove(dst)

	target := filepath.Join(dir, "backup-target")
	defer os.RemoveAll(target)
	if _, err := d.client.AddBackupTarget(ctx, api.BackupTargetSpec{Name: "bench", URL: "file://" + target}); err != nil {
		return fail(1, err)
	}
	mnt, detach, err := attached(ctx, d, spec.Volume{Name: "bench-backup", Size: backupSize, Repl: 1, FS: "ext4"})
	if err != nil {
		return fail(1, err)
	}
	defer detach()
	logger.Info("backups: writing", "mib", backupData)
	if err := ddWrite(ctx, filepath.Join(mnt, "data"), backupData); err != nil {
		return fail(1, err)
	}
	var last *api.Backup
	for i, extra := range []string{"", "more"} {
		if extra != "" {
			if err := ddWrite(ctx, filepath.Join(mnt, extra), backupChange); err != nil {
				return fail(i+1, err)
			}
		}
		b, err := timedBackup(ctx, d, "bench-backup")
		if err != nil {
			return fail(i+1, err)
		}
		steps[i+1].read, steps[i+1].uploaded, steps[i+1].took = b.Total, b.Uploaded, b.Finished.Sub(b.Created)
		logger.Info("backup", "id", b.ID, "read", b.Total, "uploaded", b.Uploaded, "took", steps[i+1].took)
		last = b
	}
	start = time.Now()
	if _, err := d.client.RestoreBackup(ctx, last.ID, "bench-restored", api.RestoreOptions{}); err != nil {
		return fail(3, err)
	}
	steps[3].took = time.Since(start)
	logger.Info("restore", "took", steps[3].took)
	return steps
}

// timedBackup backs vol up to the bench target and waits for the end.
func timedBackup(ctx context.Context, d *daemon, vol string) (*api.Backup, error) {
	b, err := d.client.CreateBackup(ctx, api.BackupSpec{Volume: vol, Target: "bench"})
	if err != nil {
		return nil, err
	}
	for {
		bs, err := d.client.ListBackups(ctx, vol)
		if err != nil {
			return nil, err
		}
		for i := range bs {
			if bs[i].ID != b.ID {
				continue
			}
			switch bs[i].State {
			case api.BackupDone:
				return &bs[i], nil
			case api.BackupFailed:
				return nil, fmt.Errorf("backup %s failed: %s", b.ID, bs[i].Error)
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// renderBackups prints the backup bench.
func (rp *report) renderBackups(p func(string, ...any)) {
	p("\n## Backups\n\n")
	if rp.skipBackups {
		p("Skipped (--skip-backups).\n")
		return
	}
	if len(rp.backups) == 0 {
		p("Not measured.\n")
		return
	}
	p("A repl 1 ext4 volume of %s with %d MiB of random data (dd from /dev/urandom), backed up to a `file://` target on the same disk, "+
		"then again after %d MiB more, then restored to a new volume. MiB/s are of the data moved (what was written to the volume); "+
		"the baseline is `cp` of %d MiB between host files of the same disk, then `sync`, in the same run. "+
		"Target: the incremental backup uploads at most %.1fx what changed.\n\n", sizeString(backupSize), backupData, backupChange, backupData, backupIncrTarget)
	p("| Step | Read MiB | Uploaded MiB | Seconds | Data MiB/s | / cp | Target |\n|---|--:|--:|--:|--:|--:|---|\n")
	base := rp.backups[0]
	for i, s := range rp.backups {
		if s.err != nil {
			p("| %s | — | — | — | — | — | failed: %s |\n", s.what, oneLine(s.err))
			if i == 2 {
				rp.checked++
				rp.missed = append(rp.missed, "incremental backup (not measured)")
			}
			continue
		}
		cell := func(b int64) string {
			if i == 0 || i == 3 {
				return "—"
			}
			return fmt.Sprintf("%.0f", float64(b)/(1<<20))
		}
		vs := "—"
		if i > 0 && base.err == nil && base.mibs() > 0 {
			vs = fmt.Sprintf("%.2fx", s.mibs()/base.mibs())
		}
		target := "—"
		if i == 2 {
			q := float64(s.uploaded) / float64(s.data)
			target = rp.judge("incremental backup uploads / changed", fmt.Sprintf("≤ %.1fx", backupIncrTarget), s.uploaded > 0, q <= backupIncrTarget,
				fmt.Sprintf("%.2fx > %.1fx", q, backupIncrTarget))
			target = fmt.Sprintf("%.2fx of the change %s", q, target)
		}
		p("| %s | %s | %s | %.1f | %.0f | %s | %s |\n", s.what, cell(s.read), cell(s.uploaded), s.took.Seconds(), s.mibs(), vs, target)
	}
	var errs []error
	for _, s := range rp.backups {
		errs = append(errs, s.err)
	}
	if err := errors.Join(errs...); err != nil {
		p("\n%s\n", oneLine(err))
	}
}
