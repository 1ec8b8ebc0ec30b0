package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// copyCost is what a second synchronous copy costs the host disk: 4 KiB
// writes with an fdatasync each, one at a time, on one file, then on two
// files at once (both writes and both fdatasyncs in parallel, each op done
// when both are: what the engine does for a repl 2 volume on one node).
type copyCost struct {
	one, two float64 // ops/s
	err      error
}

// copyFileSize is the size of each file the copy-cost loop writes in.
const copyFileSize = 1 << 30

// measureCopyCost runs the loop on two files in dir for about d in all,
// alternating one file and two files in four rounds so that a drift of
// the shared machine hits both alike. Buffered writes, as the replica
// writes small blocks, and the files prefilled, as fio's are.
func measureCopyCost(ctx context.Context, dir string, d time.Duration) (res copyCost) {
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
			os.Remove(f.Name())
		}
		if res.err != nil {
			res.err = fmt.Errorf("copy cost: %w", res.err)
		}
	}()
	for _, name := range []string{"copy-a.dat", "copy-b.dat"} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return copyCost{err: err}
		}
		files = append(files, f)
		if err := prefillFile(f, copyFileSize); err != nil {
			return copyCost{err: err}
		}
	}
	var ops [3]int
	var took [3]time.Duration
	for round := range 4 {
		n := 1 + round%2
		o, t, err := syncedWrites(ctx, files[:n], d/4)
		if err != nil {
			return copyCost{err: err}
		}
		ops[n] += o
		took[n] += t
	}
	return copyCost{one: float64(ops[1]) / took[1].Seconds(), two: float64(ops[2]) / took[2].Seconds()}
}

// prefillFile writes size bytes of random data to f and makes them durable.
func prefillFile(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		for i := 0; i < len(buf); i += 8 {
			v := rand.Uint64()
			for k := range 8 {
				buf[i+k] = byte(v >> (8 * k))
			}
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return err
		}
	}
	return unix.Fdatasync(int(f.Fd()))
}

// syncedWrites writes 4 KiB at random aligned offsets to every file and
// fdatasyncs each, the files in parallel, until d has passed; it returns
// the ops done (an op is one block made durable in every file) and the time.
func syncedWrites(ctx context.Context, files []*os.File, d time.Duration) (int, time.Duration, error) {
	buf := make([]byte, 4096)
	errs := make([]error, len(files))
	start := time.Now()
	ops := 0
	for time.Since(start) < d {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		off := rand.Int64N(copyFileSize/4096) * 4096
		buf[0]++
		var wg sync.WaitGroup
		for i, f := range files {
			wg.Go(func() {
				if _, err := f.WriteAt(buf, off); err != nil {
					errs[i] = err
					return
				}
				errs[i] = unix.Fdatasync(int(f.Fd()))
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return 0, 0, err
		}
		ops++
	}
	return ops, time.Since(start), nil
}
