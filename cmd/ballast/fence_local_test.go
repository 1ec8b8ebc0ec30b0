package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/hostfs"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestForcedTakeoverFencesLocalReplica: a repl 1 volume whose only replica
// is on node a, attached on a, where a writer writes and fsyncs records.
// Node b takes it over with `volume attach --force` while a is alive and
// reachable, so b fences a's replica through a's replica server and then
// reads and writes it over the network, while a's engine still has the same
// replica open locally. From the moment b's attach returned, no fsync on a
// may succeed, and nothing of a may reach the replica: b's device, hashed
// with its filesystem frozen, stays the same while a keeps trying to
// write; every record a acknowledged before the takeover is on b, and
// e2fsck is clean.
func TestForcedTakeoverFencesLocalReplica(t *testing.T) {
	etcd := startEtcd(t)
	secret := writeSecret(t, "the secret of the fenced local replica")
	node := func(id, labels string) *daemon {
		return launch(t, id, []string{"disk"}, "--etcd-endpoints", etcd.URL, "--cluster-secret-file", secret,
			"--lease-ttl", "2s", "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--labels", labels)
	}
	a := node("a", "role=owner")
	b := node("b", "role=taker")
	ctx := a.ctx()
	v, err := a.client.CreateVolume(ctx, spec.Volume{Name: "solo", Size: 256 << 20, Repl: 1, Pin: "role=owner"}, api.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Replicas) != 1 || v.Replicas[0].Node != "a" {
		t.Fatalf("replicas of the repl 1 volume pinned to a: %+v", v.Replicas)
	}
	att, err := a.client.AttachVolume(ctx, "solo", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fioWrite(t, filepath.Join(att.MountPath, "base"), "16M", 91)
	w := startSyncWriter(t, filepath.Join(att.MountPath, "late"))
	defer w.stop()
	for w.acked() < 50 {
		time.Sleep(10 * time.Millisecond)
	}

	ackedBefore := w.acked() // all acknowledged before b's attach began
	out, err := b.cli("volume", "attach", "--force", "solo")
	if err != nil {
		t.Fatalf("forced attach on b: %v\n%s", err, out)
	}
	taken := time.Now()
	batt, err := b.client.InspectVolume(ctx, "solo")
	if err != nil {
		t.Fatal(err)
	}
	if batt.Attachment == nil || batt.Attachment.Node != "b" {
		t.Fatalf("after the forced attach on b: attachment %+v", batt.Attachment)
	}
	mnt := batt.Attachment.MountPath
	t.Logf("b took the volume over at epoch %d; a had %d records acknowledged before", batt.Attachment.Epoch, ackedBefore+1)

	dev, err := hostfs.MountSource(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if err := hostfs.Freeze(mnt); err != nil {
		t.Fatal(err)
	}
	frozen := true
	defer func() {
		if frozen {
			hostfs.Thaw(mnt)
		}
	}()
	before := devHash(t, dev)
	time.Sleep(2 * time.Second) // a keeps writing and fsyncing meanwhile
	after := devHash(t, dev)
	hostfs.Thaw(mnt)
	frozen = false
	w.stop()

	late, firstErr := w.since(taken)
	t.Logf("a's writer after the takeover: %d fsyncs succeeded, first error: %v", late, firstErr)
	if late > 0 {
		t.Errorf("%d fsyncs on a started after b's forced attach returned, and succeeded: the fenced owner still writes its local replica", late)
	}
	if !errors.Is(firstErr, syscall.EIO) {
		t.Errorf("a's first failed write or fsync after the takeover: %v, want EIO", firstErr)
	}
	if after != before {
		t.Fatal("b's device changed while its filesystem was frozen: the fenced owner a wrote through the fence into its local replica")
	}
	checkRecords(t, filepath.Join(mnt, "late"), ackedBefore)
	fioVerify(t, filepath.Join(mnt, "base"), "16M", 91)
	fsckFrozen(t, mnt)
}

// syncWriter writes 4 KiB records (crash_test.go's format) to a file and
// fsyncs after each, and goes on after errors, until stopped: it records
// when each fsync that succeeded had started.
type syncWriter struct {
	done chan struct{}
	quit chan struct{}
	once sync.Once

	mu   sync.Mutex
	ack  int64       // last record acknowledged in a row from 0, -1 none
	oks  []time.Time // start of each fsync that succeeded
	errs []error     // of the writes and fsyncs that failed
}

func startSyncWriter(t *testing.T, path string) *syncWriter {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := &syncWriter{done: make(chan struct{}), quit: make(chan struct{}), ack: -1}
	go func() {
		defer close(w.done)
		defer f.Close()
		rec := make([]byte, 4096)
		failed := false
		for seq := int64(0); ; seq++ {
			select {
			case <-w.quit:
				return
			default:
			}
			fillRecord(rec, seq)
			start := time.Now()
			_, err := f.WriteAt(rec, seq*4096)
			if err == nil {
				err = f.Sync()
			}
			w.mu.Lock()
			if err != nil {
				failed = true
				w.errs = append(w.errs, err)
			} else {
				w.oks = append(w.oks, start)
				if !failed {
					w.ack = seq
				}
			}
			w.mu.Unlock()
			if err != nil {
				time.Sleep(10 * time.Millisecond) // keep trying, without spinning
			}
		}
	}()
	return w
}

// acked is the last record acknowledged with every one before it.
func (w *syncWriter) acked() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ack
}

// since counts the fsyncs started at t or later that succeeded, and
// returns the first error of a write or fsync.
func (w *syncWriter) since(t time.Time) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.oks {
		if !s.Before(t) {
			n++
		}
	}
	if len(w.errs) == 0 {
		return n, nil
	}
	return n, w.errs[0]
}

func (w *syncWriter) stop() {
	w.once.Do(func() { close(w.quit) })
	select {
	case <-w.done:
	case <-time.After(60 * time.Second):
		// Stuck in the kernel on the fenced volume; the daemon's cleanup
		// aborts its FUSE connection.
	}
}
