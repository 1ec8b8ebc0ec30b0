package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/workloads/sensors"
)

func latencies(ds ...time.Duration) sensors.HistogramSnapshot {
	var h sensors.Histogram
	for _, d := range ds {
		h.Add(d)
	}
	return h.Snapshot()
}

func TestWorkloadReportVerdicts(t *testing.T) {
	cpu := map[string]time.Duration{"producer": time.Second, "broker": time.Second, "ingester": 2 * time.Second, "CQL server": time.Second}
	run := func(consumer string, n int64, secs float64, paced bool) workloadRun {
		return workloadRun{consumer: consumer, paced: paced, readings: n, elapsed: time.Duration(secs * float64(time.Second)),
			latency: latencies(time.Millisecond, 2*time.Millisecond, 100*time.Millisecond), cpu: cpu}
	}
	for _, c := range []struct {
		name    string
		runs    []workloadRun
		checked int
		missed  []string
		want    []string
	}{
		{"both met", []workloadRun{run("pipeline", 1000000, 8, false), run("naive", 20000, 10, false), run("pipeline", 3000, 10, true)}, 2, nil,
			[]string{"| saturation | pipeline | 1000000 | 8.00 | 125000 |", "| paced, 300/s | pipeline |", "125000 readings/s, target ≥ 100000 meets",
				"Pipeline / naive: 62.5x, target ≥ 20x meets", "1.0, 1.0, 2.0, 1.0 |"}},
		{"slow pipeline", []workloadRun{run("pipeline", 500000, 10, false), run("naive", 20000, 10, false)}, 2,
			[]string{"workload pipeline readings/s 50000/s < 100000/s"}, []string{"target ≥ 100000 **below**", "25.0x, target ≥ 20x meets"}},
		{"naive failed", []workloadRun{run("pipeline", 1000000, 8, false), {consumer: "naive", readings: 20000, err: errors.New("boom")}}, 2,
			[]string{"workload pipeline/naive (not measured)"}, []string{"| saturation | naive | 20000 | — | — | — | — | — | failed: boom |"}},
	} {
		rp := &report{workload: &workloadReport{cfg: workloadConfig{sensors: 200, pacedRate: 300}, runs: c.runs}}
		var b strings.Builder
		rp.renderWorkload(func(f string, a ...any) { b.WriteString(sprintf(f, a...)) })
		out := b.String()
		if rp.checked != c.checked || strings.Join(rp.missed, ";") != strings.Join(c.missed, ";") {
			t.Errorf("%s: checked %d missed %q, want %d %q", c.name, rp.checked, rp.missed, c.checked, c.missed)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: report lacks %q:\n%s", c.name, w, out)
			}
		}
	}
	rp := &report{workload: &workloadReport{skipped: true}}
	var b strings.Builder
	rp.renderWorkload(func(f string, a ...any) { b.WriteString(sprintf(f, a...)) })
	if !strings.Contains(b.String(), "Skipped (--skip-workload).") || rp.checked != 0 {
		t.Errorf("skipped: %q, %d checked", b.String(), rp.checked)
	}
}

func TestProcCPU(t *testing.T) {
	deadline := time.Now().Add(50 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = strings.Repeat("x", n%100)
	}
	d, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 || d > time.Hour {
		t.Fatalf("CPU time of this process %v", d)
	}
	if _, err := procCPU(-1); err == nil {
		t.Error("no error for pid -1")
	}
}

func sprintf(f string, a ...any) string { return fmt.Sprintf(f, a...) }
