package main

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ackWriter appends 4 KiB records, each carrying its sequence number and a
// CRC32C of itself, and fsyncs after each one. acked is the highest record
// whose fsync returned success: every record up to it must survive a crash.
type ackWriter struct {
	path  string
	acked int64
	err   error
	done  chan struct{}
	stop  chan struct{}
	once  sync.Once
}

func startAckWriter(path string) *ackWriter {
	w := &ackWriter{path: path, acked: -1, done: make(chan struct{}), stop: make(chan struct{})}
	go w.run()
	return w
}

func (w *ackWriter) run() {
	defer close(w.done)
	f, err := os.OpenFile(w.path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		w.err = err
		return
	}
	defer f.Close()
	rec := make([]byte, 4096)
	for seq := int64(0); ; seq++ {
		select {
		case <-w.stop:
			return
		default:
		}
		fillRecord(rec, seq)
		if _, err := f.WriteAt(rec, seq*4096); err != nil {
			w.err = err
			return
		}
		if err := f.Sync(); err != nil {
			w.err = err
			return
		}
		w.acked = seq
	}
}

// halt stops the writer after the record it is writing. Calling it
// again waits for the same end.
func (w *ackWriter) halt() {
	w.once.Do(func() { close(w.stop) })
	<-w.done
}

// fillRecord fills rec (a 4096-byte record) as record seq: its CRC32C,
// seq, then random bytes, as checkRecords verifies it.
func fillRecord(rec []byte, seq int64) {
	binary.LittleEndian.PutUint64(rec[4:], uint64(seq))
	for i := 12; i+8 <= len(rec); i += 8 {
		binary.LittleEndian.PutUint64(rec[i:], rand.Uint64())
	}
	binary.LittleEndian.PutUint32(rec, crc32.Checksum(rec[4:], castagnoli))
}

// checkRecords verifies that records 0..acked are all in the file, intact.
func checkRecords(t *testing.T, path string, acked int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for seq := int64(0); seq <= acked; seq++ {
		if int64(len(b)) < (seq+1)*4096 {
			t.Fatalf("record %d of %d acknowledged ones is missing: file has %d bytes", seq, acked+1, len(b))
		}
		rec := b[seq*4096 : (seq+1)*4096]
		if got := binary.LittleEndian.Uint64(rec[4:]); got != uint64(seq) {
			t.Fatalf("record %d holds sequence %d", seq, got)
		}
		if crc32.Checksum(rec[4:], castagnoli) != binary.LittleEndian.Uint32(rec) {
			t.Fatalf("record %d is corrupt", seq)
		}
	}
}

// TestCrashDuringFsyncs kills the daemon with SIGKILL while a writer
// fsyncs record after record and fio writes with fsync=1, restarts it, and
// checks that every fsync-acknowledged write is there and the filesystem
// is clean. Twice, so recovery is also tested on a recovered volume.
func TestCrashDuringFsyncs(t *testing.T) {
	d := startDaemon(t)
	ctx := d.ctx()
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "db", Size: 1 << 30, Repl: 2}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	att, err := d.client.AttachVolume(ctx, "db", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mnt := att.MountPath
	fioWrite(t, filepath.Join(mnt, "base"), "32M", 7)

	for round := range 2 {
		log := filepath.Join(mnt, "log"+string(rune('0'+round)))
		w := startAckWriter(log)
		bg := exec.Command("fio", "--name=sync", "--filename="+filepath.Join(mnt, "busy"), "--rw=randwrite", "--bs=4k",
			"--size=64M", "--fsync=1", "--time_based", "--runtime=60", "--ioengine=psync")
		if err := bg.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if w.acked < 10 {
			t.Fatalf("round %d: only %d records acknowledged before the crash: %v", round, w.acked+1, w.err)
		}
		d.kill9()
		select {
		case <-w.done:
		case <-time.After(30 * time.Second):
			t.Fatal("writer still blocked 30s after the daemon died: I/O must fail, not hang")
		}
		if w.err == nil {
			t.Fatal("writer saw no error although the daemon died")
		}
		acked := w.acked
		bg.Process.Kill()
		bg.Wait()
		t.Logf("round %d: %d records acknowledged, writer stopped with: %v", round, acked+1, w.err)

		d.start() // recovers: cleans stale mounts, re-attaches db at the same path
		v, err := d.client.InspectVolume(ctx, "db")
		if err != nil {
			t.Fatal(err)
		}
		if v.Attachment == nil || v.Attachment.MountPath != mnt {
			t.Fatalf("after restart db is not attached at %s: %+v", mnt, v.Attachment)
		}
		checkRecords(t, log, acked)
		fioVerify(t, filepath.Join(mnt, "base"), "32M", 7)
		fsckFrozen(t, mnt)
	}
}
