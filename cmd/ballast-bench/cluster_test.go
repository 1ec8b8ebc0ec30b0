package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
)

func TestClusterReport(t *testing.T) {
	sel := selectJobs("")
	base, r2 := map[string]result{}, map[string]result{}
	for _, j := range sel {
		base[j.name] = result{IOPS: 1000, MiBs: 1000}
		r2[j.name] = result{IOPS: 600, MiBs: 600}
	}
	r2["rand-write-4k-qd16"] = result{IOPS: 400} // below 0.5
	trial := func(d time.Duration, fs string, how failure) failoverTrial {
		return failoverTrial{volume: "v", from: "a", to: "b", fs: fs, how: how, detect: d, attach: time.Second, write: 10 * time.Millisecond,
			took: &api.AttachTimes{Claim: time.Millisecond, Open: 2 * time.Millisecond, Mount: 3 * time.Millisecond}}
	}
	local := map[string]result{}
	for _, j := range sel {
		local[j.name] = result{IOPS: 800, MiBs: 800}
	}
	rp := &report{jobs: sel, targets: []fioTarget{{label: "baseline (loop)", res: base}, {label: "repl 2", repl: 2, res: local, want: map[string]float64{}}}, skipSnap: true, skipRSS: true,
		cluster: &clusterReport{
			fio: []fioTarget{
				{label: "cluster repl 2", repl: 2, res: r2, want: clusterFioTargets[2]},
				{label: "cluster repl 3", repl: 3, res: r2},
			},
			trials: []failoverTrial{trial(time.Second, "ext4", killed), trial(1500*time.Millisecond, "ext4", killed), trial(5*time.Second, "ext4", killed),
				{volume: "v", fs: "ext4", how: killed, err: errors.New("boom")}, trial(3*time.Second, "xfs", frozen), trial(time.Second, "xfs", leaderKilled)},
			rebuild: &rebuildResult{owner: "a", peer: "b", spare: "c", allocated: 1 << 30, took: 4 * time.Second, copyTook: 2 * time.Second,
				fgBefore: result{MiBs: 100}, fgDuring: result{MiBs: 60}},
		}}
	out := rp.render()
	// repl 2: seq write (0.6) and rand write (0.4) missed; failover ext4
	// killed median 2.51 s meets, xfs frozen 4.01 s misses; rebuild 256
	// MiB/s vs 512: 0.5 missed; foreground 0.6 meets; xfs leader killed
	// 2.01 s meets.
	if rp.checked != 7 || len(rp.missed) != 4 {
		t.Errorf("checked %d, missed %q", rp.checked, rp.missed)
	}
	for _, want := range []string{
		"| seq-write-1M | MiB/s | 1000.0 | 600.0 | 0.60x | ≥ 0.70 **below** |",
		"| rand-write-4k-qd16 | IOPS | 1000 | 400 | 0.40x | ≥ 0.50 **below** | 400 | 0.40x | — |",
		"| 1 | ext4 | a | killed | b | 1.00 | 1.00 | 1.0 | 2.0 | 3.0 | 10.0 | 2.01 |",
		"| 5 | xfs | a | frozen | b | 3.00 | 1.00 | 1.0 | 2.0 | 3.0 | 10.0 | 4.01 |",
		"| ext4 | killed | 3 of 4 | 2.51 | 6.01 | median < 3s meets |",
		"| xfs | frozen | 1 of 1 | 4.01 | 4.01 | median < 3s **below** |",
		"| seq-write-1M | MiB/s | 800.0 | 600.0 | 0.75x |",
		"| rand-write-4k-qd16 | IOPS | 800 | 400 | 0.50x |",
		"| Rebuild throughput | 256.0 MiB/s (1 GiB in 4.00 s) | 512.0 MiB/s (dd) | 0.50x | ≥ 0.70 **below** |",
		"| 60.0 | 100.0 (before the failure) | 0.60x | ≥ 0.50 meets |",
		"| 6 | xfs | a | leader killed | b | 1.00 | 1.00 | 1.0 | 2.0 | 3.0 | 10.0 | 2.01 |",
		"| xfs | leader killed | 1 of 1 | 2.01 | 2.01 | median < 3s meets |",
		"3 of 7 targets met.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	rp.cluster = &clusterReport{skipped: true}
	if out := rp.render(); !strings.Contains(out, "Skipped (--skip-cluster).") || rp.checked != 0 {
		t.Errorf("skipped cluster: checked %d\n%s", rp.checked, out)
	}
}
