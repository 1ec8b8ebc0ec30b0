package fuseloop_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/spec"
	"github.com/ballast-io/ballast/pool/testenv"
)

const enableURingParam = "/sys/module/fuse/parameters/enable_uring"

// setEnableURing sets the fuse module's enable_uring parameter (Y or N)
// for the test and restores the old value when it ends. The parameter is
// host-wide, but it only matters to servers that ask for io_uring at
// INIT, which no other FUSE server here does. Tests of this package that
// set it do not run in parallel; a lock keeps two test processes apart.
func setEnableURing(t *testing.T, v string) {
	t.Helper()
	old, err := os.ReadFile(enableURingParam)
	if err != nil {
		testenv.SkipOrFail(t, "no FUSE over io_uring in this kernel (CONFIG_FUSE_IO_URING): %v", err)
	}
	testenv.LockFile(t, "/run/lock/ballast-fuse-enable-uring.lock", "the fuse module's enable_uring parameter")
	if err := os.WriteFile(enableURingParam, []byte(v), 0); err != nil {
		testenv.SkipOrFail(t, "set %s to %s: %v", enableURingParam, v, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(enableURingParam, bytes.TrimSpace(old), 0); err != nil {
			t.Errorf("restore %s to %s: %v", enableURingParam, old, err)
		}
	})
}

func newExporterWith(t testing.TB, opts fuseloop.Options) *fuseloop.Exporter {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = log.New(os.Stderr, "", log.LstdFlags)
	}
	e, err := fuseloop.New(filepath.Join(t.TempDir(), "state"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close exporter: %v", err)
		}
		if err := e.Recover(); err != nil {
			t.Errorf("recover: %v", err)
		}
		assertCleanTB(t, e.StateDir())
	})
	return e
}

func assertCleanTB(t testing.TB, dir string) {
	if tt, ok := t.(*testing.T); ok {
		assertClean(tt, dir)
	}
}

// pattern fills p with bytes that depend on the seed and the offset.
func pattern(p []byte, seed, off int64) {
	for i := range p {
		x := uint64(seed)*0x9e3779b97f4a7c15 + uint64(off+int64(i))>>3*0xbf58476d1ce4e5b9
		p[i] = byte(x >> 56)
	}
}

// exerciseDevice writes patterns of several sizes from several
// goroutines at once through the loop device with O_DIRECT, reads them
// back, checks them against mem (the exported device), fsyncs and
// discards.
func exerciseDevice(t *testing.T, devPath string, mem *block.Mem, dev *countingDev) {
	t.Helper()
	f, err := os.OpenFile(devPath, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// 8 writers, each its own 4 MiB region, sizes 4 KiB to 1 MiB (larger
	// than max_write: the kernel splits it into several requests).
	sizes := []int{4096, 8192, 64 << 10, 256 << 10, 1 << 20}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := int64(w) * 4 << 20
			for round, n := range sizes {
				off := base + int64(round)*(768<<10)
				p := alignedBuf(n)
				pattern(p, int64(w*10+round), off)
				if _, err := f.WriteAt(p, off); err != nil {
					errs <- fmt.Errorf("writer %d: write %d at %d: %w", w, n, off, err)
					return
				}
				r := alignedBuf(n)
				if _, err := f.ReadAt(r, off); err != nil {
					errs <- fmt.Errorf("writer %d: read %d at %d: %w", w, n, off, err)
					return
				}
				if !bytes.Equal(r, p) {
					errs <- fmt.Errorf("writer %d: %d bytes at %d read back differ", w, n, off)
					return
				}
				got := make([]byte, n)
				if _, err := mem.ReadAt(got, off); err != nil || !bytes.Equal(got, p) {
					errs <- fmt.Errorf("writer %d: %d bytes at %d did not reach the device (err %v)", w, n, off, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	before := dev.flushes.Load()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if dev.flushes.Load() == before {
		t.Error("fsync of the loop device did not reach Device.Flush")
	}
	rng := [2]uint64{40 << 20, 1 << 20}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKDISCARD, uintptr(unsafe.Pointer(&rng[0]))); errno != 0 {
		t.Fatalf("BLKDISCARD: %v", errno)
	}
	if dev.discards.Load() == 0 {
		t.Error("discard did not reach Device.Discard")
	}
}

// TestURingReadWrite serves a volume over FUSE io_uring: data written
// and read through the loop device with O_DIRECT is right, fsync and
// discard reach the device, the requests really went through the rings,
// and Unexport ends it all cleanly.
func TestURingReadWrite(t *testing.T) {
	testenv.RequirePrivileged(t)
	setEnableURing(t, "1")
	e := newExporterWith(t, fuseloop.Options{URing: true})
	mem := block.NewMem(64 << 20)
	dev := &countingDev{Device: mem}
	devPath, err := e.Export(spec.MustName("vol-u"), dev)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Transport("vol-u"); got != fuseloop.TransportURing {
		t.Fatalf("Transport = %q, want %q", got, fuseloop.TransportURing)
	}
	// Export's own requests (lookup, open, statfs...) already went over
	// the rings.
	before := fuseloop.URingRequests(e, "vol-u")
	if before == 0 {
		t.Error("no request of the export itself went over io_uring")
	}
	exerciseDevice(t, devPath, mem, dev)
	after := fuseloop.URingRequests(e, "vol-u")
	// 8 writers x 5 sizes, each a write and a read of 1 to 4 requests.
	if after-before < 80 {
		t.Errorf("%d requests went over io_uring during the I/O, want at least 80", after-before)
	}
	t.Logf("%d requests over io_uring (%d before the I/O)", after, before)
	if err := e.Unexport(spec.MustName("vol-u")); err != nil {
		t.Fatal(err)
	}
	if got := e.Transport("vol-u"); got != "" {
		t.Errorf("Transport after Unexport = %q", got)
	}
	assertClean(t, e.StateDir())
}

// TestURingFallsBackWithoutEnable: when the kernel does not offer
// io_uring (enable_uring N), a URing exporter serves over /dev/fuse.
func TestURingFallsBackWithoutEnable(t *testing.T) {
	testenv.RequirePrivileged(t)
	setEnableURing(t, "0")
	e := newExporterWith(t, fuseloop.Options{URing: true})
	mem := block.NewMem(64 << 20)
	dev := &countingDev{Device: mem}
	devPath, err := e.Export(spec.MustName("vol-c"), dev)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Transport("vol-c"); got != fuseloop.TransportDevFUSE {
		t.Fatalf("Transport = %q, want %q", got, fuseloop.TransportDevFUSE)
	}
	exerciseDevice(t, devPath, mem, dev)
	if n := fuseloop.URingRequests(e, "vol-c"); n != 0 {
		t.Errorf("%d requests over io_uring with enable_uring off", n)
	}
	if err := e.Unexport(spec.MustName("vol-c")); err != nil {
		t.Fatal(err)
	}
}

func TestURingRefusesKeeper(t *testing.T) {
	_, err := fuseloop.New(t.TempDir(), fuseloop.Options{URing: true, Keeper: newFakeKeeper()})
	if err == nil || !strings.Contains(err.Error(), "io_uring transport does not survive daemon restarts yet") {
		t.Fatalf("New with URing and Keeper: %v", err)
	}
}
