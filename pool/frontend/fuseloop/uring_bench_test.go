package fuseloop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/frontend/internal/filedev"
	"github.com/ballast-io/ballast/pool/spec"
	"github.com/ballast-io/ballast/pool/testenv"
)

// fioJob is one fio workload on the raw loop device (O_DIRECT, libaio).
type fioJob struct {
	name    string
	rw      string
	bs      string
	iodepth int
	fsync   bool
}

var uringBenchJobs = []fioJob{
	{"randwrite 4k qd16", "randwrite", "4k", 16, false},
	{"randread 4k qd16", "randread", "4k", 16, false},
	{"write 4k fsync=1 qd1", "write", "4k", 1, true},
	{"seq write 1M qd4", "write", "1M", 4, false},
}

type fioResult struct {
	iops, mibps float64
	latUs       float64 // mean completion latency
	p99Us       float64
	cpuUsPerIO  float64 // CPU time of this process (the FUSE server) per I/O
}

// TestURingBench compares the FUSE transports: the same file-backed
// device (on BALLAST_BENCH_DIR, default /var/tmp, like production
// replicas) exported twice, over /dev/fuse and over io_uring, and fio run
// on each loop device in turn (classic, io_uring, classic, io_uring...)
// so that the noise of a shared machine hits both alike. Not run in CI:
// set BALLAST_URING_BENCH=1. BALLAST_URING_BENCH_ROUNDS (default 2) is
// the number of classic/io_uring pairs per job, BALLAST_URING_BENCH_SECS
// (default 5) the length of each fio run, BALLAST_URING_BENCH_DEPTH the
// io_uring entries per queue, BALLAST_URING_BENCH_THREADS the threads per
// queue, BALLAST_URING_BENCH_PIN=1 pins the queue
// threads to their CPU, BALLAST_URING_BENCH_INLINE=0 hands every request to a
// goroutine, BALLAST_URING_BENCH_SETUP_FLAGS adds io_uring setup flags
// (e.g. 0x100 COOP_TASKRUN, 0x3000 SINGLE_ISSUER|DEFER_TASKRUN).
func TestURingBench(t *testing.T) {
	if os.Getenv("BALLAST_URING_BENCH") != "1" {
		t.Skip("set BALLAST_URING_BENCH=1 to compare the FUSE transports with fio")
	}
	testenv.RequirePrivileged(t)
	testenv.RequireTools(t, "fio")
	setEnableURing(t, "1")
	rounds := envInt(t, "BALLAST_URING_BENCH_ROUNDS", 2, 1)
	secs := envInt(t, "BALLAST_URING_BENCH_SECS", 5, 1)
	depth := envInt(t, "BALLAST_URING_BENCH_DEPTH", 16, 1)
	threads := envInt(t, "BALLAST_URING_BENCH_THREADS", 0, 0)
	if os.Getenv("BALLAST_URING_BENCH_PIN") == "1" {
		old := fuseloop.SetURingPinning(true)
		t.Cleanup(func() { fuseloop.SetURingPinning(old) })
	}

	inline := os.Getenv("BALLAST_URING_BENCH_INLINE") != "0"
	flags := uint32(envInt(t, "BALLAST_URING_BENCH_SETUP_FLAGS", 0, 0))
	oi, of := fuseloop.SetURingTuning(inline, flags)
	t.Cleanup(func() { fuseloop.SetURingTuning(oi, of) })

	dir := os.Getenv("BALLAST_BENCH_DIR")
	if dir == "" {
		dir = "/var/tmp"
	}
	dir, err := os.MkdirTemp(dir, "ballast-uring-bench")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	const size = 1 << 30
	dev, err := filedev.Open(filepath.Join(dir, "disk"), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	// Real data everywhere, so that reads reach the disk rather than
	// holes.
	buf := block.Aligned(1 << 20)
	pattern(buf, 1, 0)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := dev.WriteAt(buf, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := dev.Flush(); err != nil {
		t.Fatal(err)
	}

	classic := newExporterWith(t, fuseloop.Options{})
	uring := newExporterWith(t, fuseloop.Options{URing: true, URingDepth: depth, URingThreads: threads})
	cPath, err := classic.Export(spec.MustName("bench-c"), dev)
	if err != nil {
		t.Fatal(err)
	}
	uPath, err := uring.Export(spec.MustName("bench-u"), dev)
	if err != nil {
		t.Fatal(err)
	}
	if got := uring.Transport("bench-u"); got != fuseloop.TransportURing {
		t.Fatalf("io_uring export serves over %q", got)
	}
	if got := classic.Transport("bench-c"); got != fuseloop.TransportDevFUSE {
		t.Fatalf("classic export serves over %q", got)
	}
	t.Logf("device: %s (file-backed, O_DIRECT), 1 GiB; classic %s, io_uring %s (depth %d, threads %d, inline %v, setup flags %#x); %d pairs of %d s runs",
		filepath.Join(dir, "disk"), cPath, uPath, depth, threads, inline, flags, rounds, secs)

	var report strings.Builder
	fmt.Fprintf(&report, "| job | classic IOPS | io_uring IOPS | ratio of means | median pair ratio (pairs) | classic MiB/s | io_uring MiB/s | classic lat µs (p99) | io_uring lat µs (p99) | server CPU µs/IO classic | io_uring |\n")
	fmt.Fprintf(&report, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, job := range uringBenchJobs {
		var c, u []fioResult
		for range rounds {
			c = append(c, runFio(t, cPath, job, secs))
			before := fuseloop.URingRequests(uring, "bench-u")
			u = append(u, runFio(t, uPath, job, secs))
			if fuseloop.URingRequests(uring, "bench-u") == before {
				t.Fatalf("%s: no request went over io_uring", job.name)
			}
		}
		mc, mu := mean(c), mean(u)
		// Each pair ran back to back: its ratio is the least disturbed by
		// what else the machine does.
		var pairs []float64
		for i := range c {
			pairs = append(pairs, u[i].iops/c[i].iops)
		}
		slices.Sort(pairs)
		med := pairs[len(pairs)/2]
		if len(pairs)%2 == 0 {
			med = (pairs[len(pairs)/2-1] + pairs[len(pairs)/2]) / 2
		}
		var ps []string
		for i := range c {
			ps = append(ps, fmt.Sprintf("%.2f", u[i].iops/c[i].iops))
		}
		t.Logf("%-22s classic %s | io_uring %s | ratio %.2f, pairs %s", job.name, iopsList(c), iopsList(u), mu.iops/mc.iops, strings.Join(ps, " "))
		fmt.Fprintf(&report, "| %s | %.0f | %.0f | %.2f | **%.2f** (%s) | %.1f | %.1f | %.0f (%.0f) | %.0f (%.0f) | %.1f | %.1f |\n",
			job.name, mc.iops, mu.iops, mu.iops/mc.iops, med, strings.Join(ps, " "), mc.mibps, mu.mibps, mc.latUs, mc.p99Us, mu.latUs, mu.p99Us, mc.cpuUsPerIO, mu.cpuUsPerIO)
	}
	t.Logf("\n%s", report.String())
	if out := os.Getenv("BALLAST_URING_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func envInt(t *testing.T, name string, def, least int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 0, 64)
	if err != nil || n < int64(least) {
		t.Fatalf("%s=%q: want a number of at least %d", name, v, least)
	}
	return int(n)
}

func iopsList(rs []fioResult) string {
	var s []string
	for _, r := range rs {
		s = append(s, fmt.Sprintf("%.0f", r.iops))
	}
	return strings.Join(s, "/")
}

func mean(rs []fioResult) fioResult {
	var m fioResult
	for _, r := range rs {
		m.iops += r.iops / float64(len(rs))
		m.mibps += r.mibps / float64(len(rs))
		m.latUs += r.latUs / float64(len(rs))
		m.p99Us += r.p99Us / float64(len(rs))
		m.cpuUsPerIO += r.cpuUsPerIO / float64(len(rs))
	}
	return m
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runFio runs job on devPath for secs seconds.
func runFio(t *testing.T, devPath string, job fioJob, secs int) fioResult {
	t.Helper()
	args := []string{
		"--name=bench", "--filename=" + devPath, "--direct=1", "--ioengine=libaio",
		"--rw=" + job.rw, "--bs=" + job.bs, "--iodepth=" + strconv.Itoa(job.iodepth),
		"--time_based", "--runtime=" + strconv.Itoa(secs), "--output-format=json",
	}
	if job.fsync {
		args = append(args, "--fsync=1")
	}
	// Killed (by PID) if it overruns badly.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs+60)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "fio", args...)
	cmd.Stderr = os.Stderr
	cpu0 := cpuTime()
	out, err := cmd.Output()
	cpu := cpuTime() - cpu0
	if err != nil {
		t.Fatalf("fio %s on %s: %v", job.name, devPath, err)
	}
	var res struct {
		Jobs []struct {
			Read, Write fioStats
		}
	}
	// fio may print warnings before the JSON.
	if i := strings.IndexByte(string(out), '{'); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Jobs) != 1 {
		t.Fatalf("fio %s: parse output: %v\n%s", job.name, err, out)
	}
	st := res.Jobs[0].Write
	if strings.Contains(job.rw, "read") {
		st = res.Jobs[0].Read
	}
	r := fioResult{
		iops:  st.IOPS,
		mibps: float64(st.BW) / 1024,
		latUs: st.ClatNs.Mean / 1000,
		p99Us: st.ClatNs.Percentile["99.000000"] / 1000,
	}
	if st.TotalIOs > 0 {
		r.cpuUsPerIO = float64(cpu.Microseconds()) / float64(st.TotalIOs)
	}
	if math.IsNaN(r.iops) || r.iops == 0 {
		t.Fatalf("fio %s: no I/O done\n%s", job.name, out)
	}
	return r
}

type fioStats struct {
	IOPS     float64 `json:"iops"`
	BW       int64   `json:"bw"` // KiB/s
	TotalIOs int64   `json:"total_ios"`
	ClatNs   struct {
		Mean       float64            `json:"mean"`
		Percentile map[string]float64 `json:"percentile"`
	} `json:"clat_ns"`
}
