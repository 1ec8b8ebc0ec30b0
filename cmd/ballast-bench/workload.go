package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ballast-io/ballast/workloads/sensors"
)

// The workload section (docs/architecture.md, "The workload"): the sensor
// pipeline end to end on this machine, produce -> embedded Kafka broker ->
// ingest -> embedded CQL server, every part its own ballast process as deployed
// (ballast workload kafka|cql|produce|ingest). Two consumers on the same
// setup in the same run: the pipeline's ingester (chunks, unlogged batches
// per partition, parallel writes) and the reference design's naive
// consumer (ballast workload ingest --naive: one synchronous INSERT per
// message). Each measurement gets a broker and a CQL server of its own,
// started with empty data dirs.
//
// Two measurements per consumer:
//   - saturation: the producer writes N readings as fast as it can while
//     the consumer runs; readings/s is N over the time from the producer's
//     start to the last reading stored, and the latency of each reading
//     runs from its Kafka timestamp (set when the producer took it) to the
//     end of the write that stored it, so under saturation it includes the
//     backlog;
//   - paced: the producer writes at a fixed rate both consumers sustain;
//     the latency then is the pipeline's own.
//
// Before each measurement a few warm-up readings go through, so the
// consumer has joined its group and prepared its statements; the counters
// and the latency histogram of the measurement are the consumer's
// (--stats-file) minus what they were after the warm-up.

// The ingester's settings in the benchmark: its defaults, said in the
// report.
const (
	benchChunk     = 8192
	benchLinger    = 10 * time.Millisecond
	benchBatchRows = 64
	benchWriters   = 32
)

// Targets (docs/architecture.md, "Measurements").
const (
	workloadRateTarget  = 100000.0 // readings/s, pipeline, end to end
	workloadRatioTarget = 20.0     // pipeline / naive
)

type workloadConfig struct {
	readings      int64   // saturation run of the pipeline
	naiveReadings int64   // saturation run of the naive consumer
	sensors       int     // sensors of the producer
	pacedRate     float64 // readings/s of the paced runs
	pacedFor      time.Duration
}

// workloadFlags registers the workload section's flags.
func workloadFlags(w *workloadConfig) {
	flag.Int64Var(&w.readings, "workload-readings", 1000000, "readings the pipeline's saturation run produces")
	flag.Int64Var(&w.naiveReadings, "workload-naive-readings", 20000, "readings the naive consumer's saturation run produces")
	flag.IntVar(&w.sensors, "workload-sensors", 200, "simulated sensors (each takes at most 1000 readings/s)")
	flag.Float64Var(&w.pacedRate, "workload-paced-rate", 300, "readings/s of the paced latency runs (both consumers must keep up)")
	flag.DurationVar(&w.pacedFor, "workload-paced-for", 10*time.Second, "length of the paced latency runs")
}

// workloadRun is one measurement.
type workloadRun struct {
	consumer string // "pipeline" or "naive"
	paced    bool
	readings int64
	elapsed  time.Duration // producer start -> last reading stored
	produced time.Duration // producer start -> producer done
	latency  sensors.HistogramSnapshot
	cpu      map[string]time.Duration // CPU time (user+sys) per process during the measurement
	err      error
}

func (r workloadRun) rate() float64 {
	if r.err != nil || r.elapsed <= 0 {
		return 0
	}
	return float64(r.readings) / r.elapsed.Seconds()
}

type workloadReport struct {
	skipped bool
	cfg     workloadConfig
	err     error // the section could not run
	runs    []workloadRun
}

// workloadProcs are the processes whose CPU the report shows, in order.
var workloadProcs = []string{"producer", "broker", "ingester", "CQL server"}

// startBallast starts `ballast workload ARGS` as process name, logging to
// dir/name.log.
func startBallast(ballast, dir, name string, log *slog.Logger, args ...string) (*process, error) {
	p, err := startProcess(name, filepath.Join(dir, name+".log"), syscall.SIGTERM, append([]string{ballast, "workload"}, args...), log)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return p, nil
}

func (p *process) cpu() time.Duration {
	if p.exited() {
		if st := p.cmd.ProcessState; st != nil {
			return st.UserTime() + st.SystemTime()
		}
		return 0
	}
	d, _ := procCPU(p.cmd.Process.Pid)
	return d
}

// procCPU reads utime + stime of pid from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	const ticks = 100 // USER_HZ
	return time.Duration(ut+st) * time.Second / ticks, nil
}

// waitListening waits until addr accepts connections.
func waitListening(ctx context.Context, p *process, addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited before listening on %s; its log:\n%s", p.name, addr, p.tail(20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not listening on %s: %v", p.name, addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// measureWorkload runs the section: each measurement on servers of its
// own (fresh data dirs), so none pays for another's data or compactions.
func measureWorkload(ctx context.Context, c config, logger *slog.Logger) *workloadReport {
	wr := &workloadReport{cfg: c.workload}
	if c.skipWorkload {
		wr.skipped = true
		return wr
	}
	paced := int64(c.workload.pacedRate * c.workload.pacedFor.Seconds())
	for i, m := range []struct {
		consumer string
		readings int64
		rate     float64
	}{
		{"pipeline", c.workload.readings, 0},
		{"naive", c.workload.naiveReadings, 0},
		{"pipeline", paced, c.workload.pacedRate},
		{"naive", paced, c.workload.pacedRate},
	} {
		if m.readings <= 0 {
			continue
		}
		// What the previous measurement left in the page cache is
		// written back now, not during this one's fsyncs.
		syscall.Sync()
		dir := filepath.Join(c.dir, "workload", fmt.Sprintf("run%d-%s", i+1, m.consumer))
		env, err := startWorkloadEnv(ctx, c.ballast, dir, c.workload.sensors, logger)
		if err != nil {
			wr.err = err
			return wr
		}
		r := env.run(ctx, m.consumer, m.readings, m.rate)
		if r.err == nil && (env.broker.exited() || env.store.exited()) {
			r.err = errors.New("a server died during the measurement")
		}
		env.stop()
		wr.runs = append(wr.runs, r)
		if r.err != nil {
			logger.Error("workload run failed", "consumer", r.consumer, "paced", r.paced, "err", r.err)
		} else {
			logger.Info("workload run", "consumer", r.consumer, "paced", r.paced, "readings", r.readings,
				"seconds", fmt.Sprintf("%.2f", r.elapsed.Seconds()), "readings_per_s", int(r.rate()),
				"p99_ms", ms(r.latency.Quantile(0.99)))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return wr
}

// workloadEnv is a broker and a CQL server for one measurement.
type workloadEnv struct {
	ballast, dir       string
	kafkaAddr, cqlAddr string
	broker, store      *process
	sensors            int
	log                *slog.Logger
}

// startWorkloadEnv starts a broker and a CQL server with data dirs under
// dir, on free loopback ports, and waits until both listen.
func startWorkloadEnv(ctx context.Context, ballast, dir string, sensors int, logger *slog.Logger) (_ *workloadEnv, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	e := &workloadEnv{ballast: ballast, dir: dir, sensors: sensors, log: logger}
	var ports [2]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	e.kafkaAddr, e.cqlAddr = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	defer func() {
		if err != nil {
			e.stop()
		}
	}()
	if e.broker, err = startBallast(ballast, dir, "broker", logger, "kafka", "--data-dir", filepath.Join(dir, "kafka"), "--listen", e.kafkaAddr); err != nil {
		return nil, err
	}
	if e.store, err = startBallast(ballast, dir, "cql", logger, "cql", "--data-dir", filepath.Join(dir, "cql"), "--listen", e.cqlAddr); err != nil {
		return nil, err
	}
	if err := waitListening(ctx, e.broker, e.kafkaAddr); err != nil {
		return nil, err
	}
	if err := waitListening(ctx, e.store, e.cqlAddr); err != nil {
		return nil, err
	}
	return e, nil
}

// stop stops the servers.
func (e *workloadEnv) stop() {
	for _, p := range []*process{e.broker, e.store} {
		if p != nil {
			p.stop(30 * time.Second)
		}
	}
}

// warmup is how many readings go through a consumer before a measurement.
const warmup = 200

// run is one measurement with a fresh consumer.
func (e *workloadEnv) run(ctx context.Context, consumer string, readings int64, rate float64) (r workloadRun) {
	r = workloadRun{consumer: consumer, paced: rate > 0, readings: readings, cpu: map[string]time.Duration{}}
	name := "bench-" + consumer
	topic, keyspace := name, strings.ReplaceAll(name, "-", "_")
	stats := filepath.Join(e.dir, name+".stats.json")
	args := []string{"ingest", "--brokers", e.kafkaAddr, "--cassandra", e.cqlAddr, "--topic", topic, "--group", name,
		"--keyspace", keyspace, "--stats-file", stats, "--stats-interval", "50ms", "--progress", "2s", "--consistency", "ONE",
		"--chunk", strconv.Itoa(benchChunk), "--linger", benchLinger.String(), "--batch-rows", strconv.Itoa(benchBatchRows),
		"--writers", strconv.Itoa(benchWriters)}
	if consumer == "naive" {
		args = append(args, "--naive")
	}
	e.log.Info("workload: measuring", "consumer", consumer, "readings", readings, "rate", rate, "topic", topic)
	in, err := startBallast(e.ballast, e.dir, name+"-ingest", e.log, args...)
	if err != nil {
		r.err = err
		return r
	}
	defer in.stop(30 * time.Second)

	produce := func(count int64, sensors int, prefix string, rate float64) (*process, error) {
		a := []string{"produce", "--brokers", e.kafkaAddr, "--topic", topic, "--partitions", "6", "--count", strconv.FormatInt(count, 10),
			"--sensors", strconv.Itoa(sensors), "--sensor-prefix", prefix, "--progress", "2s"}
		if rate > 0 {
			a = append(a, "--rate", strconv.FormatFloat(rate, 'f', -1, 64))
		}
		return startBallast(e.ballast, e.dir, name+"-produce-"+prefix, e.log, a...)
	}
	// Warm-up: the consumer joins its group and prepares its statements.
	p, err := produce(warmup, 10, "warmup", 0)
	if err != nil {
		r.err = err
		return r
	}
	<-p.done
	if !p.cmd.ProcessState.Success() {
		r.err = fmt.Errorf("warm-up producer: %s; its log:\n%s", p.cmd.ProcessState, p.tail(10))
		return r
	}
	before, err := waitStored(ctx, in, stats, warmup, time.Minute)
	if err != nil {
		r.err = fmt.Errorf("warm-up: %w", err)
		return r
	}
	cpu0 := map[string]time.Duration{"broker": e.broker.cpu(), "ingester": in.cpu(), "CQL server": e.store.cpu()}

	start := time.Now()
	p, err = produce(readings, e.sensors, "sensor", rate)
	if err != nil {
		r.err = err
		return r
	}
	prodDone := make(chan time.Duration, 1)
	go func() { <-p.done; prodDone <- time.Since(start) }()
	// Generous: the naive consumer of a large run is slow.
	limit := 2*time.Minute + time.Duration(readings)*time.Millisecond
	after, err := waitStored(ctx, in, stats, before.Stored+readings, limit)
	if err != nil {
		p.stop(30 * time.Second)
	}
	r.produced = <-prodDone
	if err != nil {
		r.err = err
		return r
	}
	if !p.cmd.ProcessState.Success() {
		r.err = fmt.Errorf("producer: %s; its log:\n%s", p.cmd.ProcessState, p.tail(10))
		return r
	}
	r.elapsed = after.LastStored.Sub(start)
	r.latency = after.Latency.Sub(before.Latency)
	r.cpu["producer"] = p.cpu()
	for k, v := range map[string]time.Duration{"broker": e.broker.cpu(), "ingester": in.cpu(), "CQL server": e.store.cpu()} {
		r.cpu[k] = v - cpu0[k]
	}
	return r
}

// waitStored polls the consumer's stats file until it has stored at least
// n readings and the file was written after that, and returns it.
func waitStored(ctx context.Context, in *process, path string, n int64, limit time.Duration) (sensors.StatsFile, error) {
	deadline := time.Now().Add(limit)
	var st sensors.StatsFile
	for {
		var err error
		st, err = sensors.ReadStatsFile(path)
		if err == nil && st.Stored >= n {
			return st, nil
		}
		if in.exited() {
			return st, fmt.Errorf("%s exited (%s); its log:\n%s", in.name, in.cmd.ProcessState, in.tail(15))
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%s stored %d readings in %v, want %d", in.name, st.Stored, limit, n)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// renderWorkload prints the workload section.
func (rp *report) renderWorkload(p func(string, ...any)) {
	wr := rp.workload
	p("\n## Workload: sensor pipeline, end to end\n\n")
	if wr == nil {
		p("Not run.\n")
		return
	}
	if wr.skipped {
		p("Skipped (--skip-workload).\n")
		return
	}
	p("Produce -> Kafka -> ingest -> CQL store on this machine: `ballast workload kafka` (embedded broker) and `ballast workload cql` "+
		"(embedded CQL server) each with a data dir in the scratch dir, `ballast workload produce` (%d sensors, JSON readings) and "+
		"`ballast workload ingest`, every one its own process; the topic has 6 partitions. "+
		"**pipeline** is the ingester (chunks of up to %d messages or %v, unlogged batches of up to %d readings per partition, %d batches "+
		"in flight, offsets committed after the writes); **naive** is the reference design (`ingest --naive`: one synchronous INSERT "+
		"per message, auto-commit), on the same servers in the same run. Consistency ONE. "+
		"Readings/s: readings over the time from the producer's start to the last reading stored. "+
		"Latency: from a reading's Kafka timestamp (the producer sets it when it takes the reading) to the end of the write that "+
		"stored it; under saturation it includes the backlog. CPU: user+system time of each process during the measurement, "+
		"per reading. Every measurement runs on a broker and a CQL server of its own, started with empty data dirs after a sync.\n\n",
		wr.cfg.sensors, benchChunk, benchLinger, benchBatchRows, benchWriters)
	if wr.err != nil {
		p("Not measured: %s\n\n", oneLine(wr.err))
	}
	p("| Run | Consumer | Readings | Seconds | Readings/s | p50 ms | p99 ms | max ms | CPU µs/reading: %s |\n|---|---|--:|--:|--:|--:|--:|--:|---|\n",
		strings.Join(workloadProcs, ", "))
	var pipe, naive *workloadRun
	for i := range wr.runs {
		r := &wr.runs[i]
		kind := "saturation"
		if r.paced {
			kind = fmt.Sprintf("paced, %.0f/s", wr.cfg.pacedRate)
		}
		if r.err != nil {
			p("| %s | %s | %d | — | — | — | — | — | failed: %s |\n", kind, r.consumer, r.readings, oneLine(r.err))
			continue
		}
		var cpu []string
		for _, name := range workloadProcs {
			cpu = append(cpu, fmt.Sprintf("%.1f", float64(r.cpu[name].Microseconds())/float64(r.readings)))
		}
		p("| %s | %s | %d | %.2f | %.0f | %s | %s | %s | %s |\n", kind, r.consumer, r.readings, r.elapsed.Seconds(), r.rate(),
			ms(r.latency.Quantile(0.5)), ms(r.latency.Quantile(0.99)), ms(time.Duration(r.latency.MaxNs)), strings.Join(cpu, ", "))
		if !r.paced {
			switch r.consumer {
			case "pipeline":
				pipe = r
			case "naive":
				naive = r
			}
		}
	}
	p("\n")
	pipeRate := 0.0
	if pipe != nil {
		pipeRate = pipe.rate()
	}
	p("- Pipeline throughput: %.0f readings/s, target %s\n", pipeRate,
		rp.judge("workload pipeline readings/s", fmt.Sprintf("≥ %.0f", workloadRateTarget), pipe != nil, pipeRate >= workloadRateTarget,
			fmt.Sprintf("%.0f/s < %.0f/s", pipeRate, workloadRateTarget)))
	ratio := 0.0
	if pipe != nil && naive != nil && naive.rate() > 0 {
		ratio = pipe.rate() / naive.rate()
	}
	p("- Pipeline / naive: %.1fx, target %s\n", ratio,
		rp.judge("workload pipeline/naive", fmt.Sprintf("≥ %.0fx", workloadRatioTarget), ratio > 0, ratio >= workloadRatioTarget,
			fmt.Sprintf("%.1fx < %.0fx", ratio, workloadRatioTarget)))
}

// runWorkloadOnly is ballast-bench --only workload: the workload section
// alone. It needs neither root nor fio, only the ballast binary.
func runWorkloadOnly(c config, logger *slog.Logger) (err error) {
	if err := c.resolvePaths(); err != nil {
		return err
	}
	if c.skipWorkload {
		return errors.New("--only workload and --skip-workload: nothing to run")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.RemoveAll(c.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return err
	}
	defer func() {
		if c.keep {
			logger.Info("kept scratch dir", "dir", c.dir)
			return
		}
		if rerr := os.RemoveAll(c.dir); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	rp := &report{context: machineContext(c)}
	rp.workload = measureWorkload(ctx, c, logger)
	if ctx.Err() != nil {
		rp.errs = append(rp.errs, "interrupted: the report is partial")
	}
	var b strings.Builder
	pr := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	pr("# Ballast benchmark: workload only\n\n")
	for _, kv := range rp.context {
		pr("- %s: %s\n", kv[0], kv[1])
	}
	rp.renderWorkload(pr)
	pr("\n## Summary\n\n%d of %d targets met.\n", rp.checked-len(rp.missed), rp.checked)
	for _, m := range rp.missed {
		pr("- below target: %s\n", m)
	}
	for _, e := range rp.errs {
		pr("- error: %s\n", oneLine(e))
	}
	text := b.String()
	fmt.Print(text)
	if c.out != "" {
		if werr := os.WriteFile(c.out, []byte(text), 0o644); werr != nil {
			return werr
		}
		logger.Info("wrote report", "file", c.out)
	}
	if rp.workload.err != nil {
		return rp.workload.err
	}
	return ctx.Err()
}
