package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/pool/block"
)

// readCost is how fast a Go process reads the host disk the way a replica
// does: 4 KiB O_DIRECT preads at random aligned offsets of a prefilled
// file, from readers goroutines at once (the FUSE requests in flight at
// queue depth 16).
type readCost struct {
	iops float64
	err  error
}

const readers = 16

// measureReadCost prefills dir/read.dat (copyFileSize bytes) and reads it
// for d.
func measureReadCost(ctx context.Context, dir string, d time.Duration) (res readCost) {
	path := filepath.Join(dir, "read.dat")
	defer func() {
		os.Remove(path)
		if res.err != nil {
			res.err = fmt.Errorf("read cost: %w", res.err)
		}
	}()
	w, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return readCost{err: err}
	}
	err = prefillFile(w, copyFileSize)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return readCost{err: err}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return readCost{err: err}
	}
	defer f.Close()

	var ops atomic.Int64
	errs := make([]error, readers)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range readers {
		wg.Go(func() {
			buf := block.Aligned(block.Size)
			for ctx.Err() == nil {
				if _, err := f.ReadAt(buf, rand.Int64N(copyFileSize/block.Size)*block.Size); err != nil {
					errs[i] = err
					return
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return readCost{err: err}
	}
	return readCost{iops: float64(ops.Load()) / took.Seconds()}
}

// inSeries is the throughput of two stages that each cost CPU per
// operation, on CPUs both use fully: 1 / (1/a + 1/b).
func inSeries(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return 1 / (1/a + 1/b)
}
