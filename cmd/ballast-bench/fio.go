package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// unit says how a job is reported.
type unit int

const (
	mibPerSec unit = iota // throughput, for the 1 MiB jobs
	iops                  // operations per second, for the 4 KiB jobs
)

func (u unit) String() string {
	if u == iops {
		return "IOPS"
	}
	return "MiB/s"
}

// class groups jobs that share a target.
type class string

const (
	sequential class = "sequential"
	random     class = "random"
	fsync      class = "fsync"
)

// job is one fio job, run the same way on every target.
type job struct {
	name  string
	args  []string
	read  bool // report the read side (else the write side)
	unit  unit
	class class
}

// jobs are the data-path measurements (docs/architecture.md, "The data path").
var jobs = []job{
	{"seq-write-1M", []string{"--rw=write", "--bs=1M", "--iodepth=16", "--ioengine=libaio"}, false, mibPerSec, sequential},
	{"seq-read-1M", []string{"--rw=read", "--bs=1M", "--iodepth=16", "--ioengine=libaio"}, true, mibPerSec, sequential},
	{"rand-write-4k-qd16", []string{"--rw=randwrite", "--bs=4k", "--iodepth=16", "--ioengine=libaio"}, false, iops, random},
	{randReadJob, []string{"--rw=randread", "--bs=4k", "--iodepth=16", "--ioengine=libaio"}, true, iops, random},
	{fsyncJob, []string{"--rw=randwrite", "--bs=4k", "--iodepth=1", "--ioengine=psync", "--fsync=1"}, false, iops, fsync},
}

// selectJobs returns the jobs whose name contains only ("" selects all).
func selectJobs(only string) []job {
	var sel []job
	for _, j := range jobs {
		if strings.Contains(j.name, only) {
			sel = append(sel, j)
		}
	}
	return sel
}

// result is one job's outcome on one target.
type result struct {
	IOPS float64
	MiBs float64
	Err  error
}

// value is the number the report compares.
func (r result) value(u unit) float64 {
	if u == iops {
		return r.IOPS
	}
	return r.MiBs
}

// fioData is the name of the file every job of a target works on.
const fioData = "bench.dat"

// The jobs the read-cost and copy-cost measurements explain.
const (
	randReadJob = "rand-read-4k-qd16"
	fsyncJob    = "write-4k-fsync1"
)

// fioRunner runs the jobs on the filesystem mounted at a directory.
type fioRunner struct {
	fileSize string        // fio --size
	runtime  time.Duration // per job
	log      *slog.Logger
}

// prefill lays out the data file once with random data and fsyncs it, so
// the read jobs read real data and the write jobs overwrite allocated blocks.
func (f *fioRunner) prefill(ctx context.Context, dir string) error {
	start := time.Now()
	_, err := runFio(ctx, f.baseArgs("prefill", dir, false), "--rw=write", "--bs=1M", "--iodepth=16",
		"--ioengine=libaio", "--end_fsync=1")
	if err != nil {
		return fmt.Errorf("prefill %s: %w", dir, err)
	}
	f.log.Info("prefilled", "dir", dir, "size", f.fileSize, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// baseArgs are the fio options every job shares.
func (f *fioRunner) baseArgs(name, dir string, timed bool) []string {
	args := []string{"--name=" + name, "--filename=" + filepath.Join(dir, fioData), "--size=" + f.fileSize,
		"--direct=1", "--group_reporting", "--output-format=json"}
	if timed {
		secs := max(1, int(f.runtime.Round(time.Second)/time.Second))
		args = append(args, "--time_based", fmt.Sprintf("--runtime=%d", secs))
	}
	return args
}

// runAll prefills the data file under dir and runs the jobs on it. A job
// that fails is recorded in its result; only a cancelled ctx or a failed
// prefill stop the run.
func (f *fioRunner) runAll(ctx context.Context, label, dir string, sel []job) (map[string]result, error) {
	if err := f.prefill(ctx, dir); err != nil {
		return nil, err
	}
	res := map[string]result{}
	for _, j := range sel {
		out, err := runFio(ctx, f.baseArgs(j.name, dir, true), j.args...)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var r result
		if err == nil {
			r, err = parseFio(out, j.read)
		}
		if err != nil {
			r.Err = err
			f.log.Error("fio job failed", "target", label, "job", j.name, "err", err)
		} else {
			f.log.Info("fio", "target", label, "job", j.name, "iops", fmt.Sprintf("%.0f", r.IOPS), "mib_s", fmt.Sprintf("%.1f", r.MiBs))
		}
		res[j.name] = r
		_ = exec.CommandContext(ctx, "sync").Run()
	}
	return res, nil
}

// runFio runs fio with base and extra args and returns its standard output.
func runFio(ctx context.Context, base []string, extra ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "fio", append(base, extra...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("fio %s: %w: %s", strings.Join(cmd.Args[1:], " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// fioOutput is the part of fio's JSON output the report uses.
type fioOutput struct {
	Jobs []struct {
		Error int     `json:"error"`
		Read  fioSide `json:"read"`
		Write fioSide `json:"write"`
	} `json:"jobs"`
}

type fioSide struct {
	IOPS float64 `json:"iops"`
	BW   float64 `json:"bw"` // KiB/s
}

// parseFio reads fio's --output-format=json output (possibly preceded by
// notes fio prints on stdout) and returns the read or the write side of the
// first job (jobs run with --group_reporting, so there is one).
func parseFio(out []byte, read bool) (result, error) {
	i := bytes.IndexByte(out, '{')
	if i < 0 {
		return result{}, errors.New("no JSON in fio output")
	}
	var o fioOutput
	if err := json.Unmarshal(out[i:], &o); err != nil {
		return result{}, fmt.Errorf("parse fio output: %w", err)
	}
	if len(o.Jobs) == 0 {
		return result{}, errors.New("fio output has no jobs")
	}
	j := o.Jobs[0]
	if j.Error != 0 {
		return result{}, fmt.Errorf("fio job error %d", j.Error)
	}
	s := j.Write
	if read {
		s = j.Read
	}
	if s.IOPS == 0 && s.BW == 0 {
		return result{}, errors.New("fio did no I/O")
	}
	return result{IOPS: s.IOPS, MiBs: s.BW / 1024}, nil
}
