package main

import (
	"bufio"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// fioJSON is trimmed fio 3.33 --output-format=json output, preceded by a
// note as fio prints some on stdout.
const fioJSON = `note: both iodepth >= 1 and synchronous I/O engine are selected, queue depth will be capped at 1
{
  "fio version" : "fio-3.33",
  "timestamp" : 1764170000,
  "jobs" : [
    {
      "jobname" : "rand-read-4k-qd16",
      "groupid" : 0,
      "error" : 0,
      "read" : {
        "io_bytes" : 868352000,
        "bw_bytes" : 289450666,
        "bw" : 282666,
        "iops" : 70666.5,
        "runtime" : 3000
      },
      "write" : {
        "io_bytes" : 0,
        "bw_bytes" : 0,
        "bw" : 0,
        "iops" : 0.0,
        "runtime" : 0
      }
    }
  ]
}
`

func TestParseFio(t *testing.T) {
	r, err := parseFio([]byte(fioJSON), true)
	if err != nil {
		t.Fatal(err)
	}
	if r.IOPS != 70666.5 || r.MiBs != 282666.0/1024 {
		t.Errorf("read side: got %+v", r)
	}
	if _, err := parseFio([]byte(fioJSON), false); err == nil {
		t.Error("write side of a read job: want an error (no I/O), got none")
	}
	for _, bad := range []string{"", "fio: engine libaio not loadable", `{"jobs": []}`, `{"jobs": [{"error": 5}]}`, `{"jobs": [`} {
		if _, err := parseFio([]byte(bad), true); err == nil {
			t.Errorf("parseFio(%q): want an error", bad)
		}
	}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		c    class
		repl int
		want float64
		ok   bool
	}{
		{sequential, 1, 0.9, true},
		{random, 1, 0.85, true},
		{fsync, 1, 0.85, true},
		{sequential, 2, 0.8, true},
		{random, 2, 0, false},
		{fsync, 2, 0, false},
		{sequential, 0, 0, false},
	} {
		if got, ok := target(tc.c, tc.repl); got != tc.want || ok != tc.ok {
			t.Errorf("target(%s, repl %d) = %v, %v; want %v, %v", tc.c, tc.repl, got, ok, tc.want, tc.ok)
		}
	}
	if q := ratio(90, 100); q != 0.9 {
		t.Errorf("ratio(90, 100) = %v", q)
	}
	if q := ratio(90, 0); q != 0 {
		t.Errorf("ratio(90, 0) = %v, want 0", q)
	}
}

func TestReportVerdicts(t *testing.T) {
	sel := selectJobs("")
	base := map[string]result{}
	r1 := map[string]result{}
	r2 := map[string]result{}
	peer := map[string]result{}
	ceil := map[string]result{}
	for _, j := range sel {
		base[j.name] = result{IOPS: 1000, MiBs: 1000}
		ceil[j.name] = result{IOPS: 2000, MiBs: 2000}
		r1[j.name] = result{IOPS: 950, MiBs: 950} // meets every repl 1 target
		r2[j.name] = result{IOPS: 500, MiBs: 500} // below the repl 2 sequential target
		peer[j.name] = result{IOPS: 100, MiBs: 100}
	}
	r1["write-4k-fsync1"] = result{IOPS: 840} // just below 0.85
	peer["seq-write-1M"] = result{MiBs: 250}  // repl 2 only 2x ahead
	r2["rand-read-4k-qd16"] = result{Err: errors.New("boom")}
	ceil["seq-read-1M"] = result{Err: errors.New("bang")}
	rp := &report{jobs: sel, targets: []fioTarget{
		{label: "baseline (loop)", res: base},
		{label: ceilingLabel, res: ceil},
		{label: "repl 1", repl: 1, res: r1},
		{label: "repl 2", repl: 2, res: r2},
		{label: glusterLabel, peer: true, res: peer},
	}, pg: []pgResult{
		{label: pgLabelHost, tps: 1000}, {label: pgLabelLoop, tps: 800}, {label: pgLabelRepl1, tps: 850}, {label: pgLabelRepl2, tps: 500}, {label: glusterLabel, tps: 200},
	}, copies: &copyCost{one: 3000, two: 1800}, reads: &readCost{iops: 4000}, snaps: []snapResult{
		{volume: "snap-1g", size: 1 << 30, mode: "detached", target: true, times: []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}},
		{volume: "snap-64g", size: 64 << 30, mode: "attached, idle", target: true, times: []time.Duration{10 * time.Millisecond, 60 * time.Millisecond}},
		{volume: "snap-64g", size: 64 << 30, mode: "attached, 16 MiB written before each", times: []time.Duration{70 * time.Millisecond}},
	}, mems: []memResult{{phase: "ten", volumes: 10, mem: memory{RSS: 50 << 10, HWM: 120 << 10}}}}
	out := rp.render()
	// The ceiling has no targets; repl 1: 5 targets, fsync missed; repl 2: 2 sequential targets, both
	// missed; GlusterFS has none of its own; repl 2 against it: 5 jobs,
	// seq-write (2x) and rand-read (failed) missed; pgbench: repl 1 0.85x
	// meets, repl 2 0.5x missed; snapshots: 64g idle missed, the one with
	// writes not judged; memory met.
	if rp.checked != 17 || len(rp.missed) != 7 {
		t.Errorf("checked %d, missed %q", rp.checked, rp.missed)
	}
	for _, want := range []string{
		"| write-4k-fsync1 | IOPS | 1000 | 2000 | 2.00x | — | 840 | 0.84x | ≥ 0.85 **below** |",
		"| write-4k-fsync1 | IOPS | 2000 | 840 | 0.42x |",
		"| seq-read-1M | MiB/s | failed | 950.0 | — |",
		ceilingLabel + " seq-read-1M failed: bang",
		// 1 / (1/2000 + 1/4000) = 1333; 950 / 1333
		"| rand-read-4k-qd16 | repl 1 | 2000 | 4 KiB O_DIRECT random reads, 16 goroutines: 4000 | 1333 | 950 | 0.71x |",
		// 1 / (1/2000 + 1/3000) = 1200; 840 / 1200
		"| write-4k-fsync1 | repl 1 | 2000 | write + fdatasync, one copy: 3000 | 1200 | 840 | 0.70x |",
		// 1 / (1/2000 + 1/1800) = 947; 500 / 947
		"| write-4k-fsync1 | repl 2 | 2000 | write + fdatasync, two copies: 1800 | 947 | 500 | 0.53x |",
		"| 500 | 0.50x | — | 100 | 0.10x | — |",
		"| seq-write-1M | MiB/s | 500.0 | 250.0 | 2.00x | ≥ 3x **below** |",
		"| rand-write-4k-qd16 | IOPS | 500 | 100 | 5.00x | ≥ 3x meets |",
		"| rand-read-4k-qd16 | IOPS | failed | 100 | — | ≥ 3x **not measured** |",
		"| host directory | 1000 | — | — | — |",
		"| ext4 on a loop device | 800 | 0.80x | — | — |",
		"| Ballast repl 1 | 850 | 0.85x | ≥ 0.80 meets | 1.06x |",
		"| Ballast repl 2 | 500 | 0.50x | ≥ 0.60 **below** | 0.62x |",
		"| GlusterFS replica 2 | 200 | 0.20x | — | 0.25x |",
		"| host disk: write + fdatasync, ops/s | 3000 | 1800 | 0.60x |",
		"| Ballast write-4k-fsync1 (repl 1, repl 2), IOPS | 840 | 500 | 0.60x |",
		"| seq-write-1M | MiB/s | 1000.0 | 2000.0 | 2.00x | — | 950.0 | 0.95x | ≥ 0.90 meets | 500.0 | 0.50x | ≥ 0.80 **below** |",
		"| failed | — | — |",
		"repl 2 rand-read-4k-qd16 failed: boom",
		"| 2.0 | 3.0 | < 50 ms meets |",
		"| 60.0 | 60.0 | < 50 ms **below** |",
		"| attached, 16 MiB written before each | 1 | 70.0 | 70.0 | — |",
		"| 50.0 | 120.0 | < 100 MiB meets |",
		"10 of 17 targets met.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if again := rp.render(); again != out {
		t.Error("render is not repeatable")
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tballast\nVmPeak:\t 2000000 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   65432 kB\nThreads:\t12\n"
	m, err := parseStatus(bufio.NewScanner(strings.NewReader(status)))
	if err != nil || m.RSS != 65432 || m.HWM != 81234 {
		t.Errorf("parseStatus = %+v, %v", m, err)
	}
	if _, err := parseStatus(bufio.NewScanner(strings.NewReader("Name:\tkthreadd\n"))); err == nil {
		t.Error("status without VmRSS: want an error")
	}
}

// TestEncryptionReport: encrypted volumes are judged against the same repl
// in clear, and the other tables keep using the volumes in clear.
func TestEncryptionReport(t *testing.T) {
	sel := selectJobs("4k")
	base, r1, e1, ceil := map[string]result{}, map[string]result{}, map[string]result{}, map[string]result{}
	for _, j := range sel {
		base[j.name] = result{IOPS: 1000}
		ceil[j.name] = result{IOPS: 2000}
		r1[j.name] = result{IOPS: 900}
		e1[j.name] = result{IOPS: 855} // 0.95x
	}
	e1["rand-write-4k-qd16"] = result{IOPS: 720} // 0.80x
	rp := &report{jobs: sel, skipSnap: true, skipRSS: true, skipPG: true, targets: []fioTarget{
		{label: "baseline (loop)", res: base},
		{label: ceilingLabel, res: ceil},
		{label: "repl 1", repl: 1, res: r1},
		{label: "repl 1 encrypted", repl: 1, res: e1, encrypted: true, want: map[string]float64{}},
	}}
	out := rp.render()
	for _, want := range []string{
		"| rand-write-4k-qd16 | IOPS | repl 1 encrypted | 900 | 720 | 0.80x | ≥ 0.9 **below** |",
		"| rand-read-4k-qd16 | IOPS | repl 1 encrypted | 900 | 855 | 0.95x | ≥ 0.9 meets |",
		"| rand-write-4k-qd16 | IOPS | 2000 | 900 | 0.45x |", // the ceiling table: repl 1 in clear
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if !slices.Contains(rp.missed, "repl 1 encrypted rand-write-4k-qd16 / clear 0.80x < 0.9x") {
		t.Errorf("missed %q", rp.missed)
	}
}
