package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Targets (ratios to the baseline) of the data path; docs/architecture.md,
// "Measurements", lists every target with its latest result.
var targets = map[int]map[class]float64{
	1: {sequential: 0.9, random: 0.85, fsync: 0.85},
	2: {sequential: 0.8},
}

// repl2Targets are the repl 2 volume's targets by job: both replicas
// share the host disk here, so random writes and fsyncs are judged apart
// from reads.
var repl2Targets = map[string]float64{"seq-write-1M": 0.8, "seq-read-1M": 0.8, "rand-write-4k-qd16": 0.6, "write-4k-fsync1": 0.6}

// Against the peer (GlusterFS replica 2): Ballast repl 2 / GlusterFS on
// every fio job; pgbench TPS against the host directory.
const peerTarget = 3.0

var pgTargets = map[string]float64{pgLabelRepl1: 0.8, pgLabelRepl2: 0.6}

const (
	glusterLabel = "GlusterFS replica 2"
	pgLabelHost  = "host directory"
	pgLabelLoop  = "ext4 on a loop device"
	pgLabelRepl1 = "Ballast repl 1"
	pgLabelRepl2 = "Ballast repl 2"
)

// snapshotTarget is the most a snapshot may take ("well under 50 ms").
const snapshotTarget = 50 * time.Millisecond

// rssTarget is the most the daemon may hold resident with 10 volumes, KiB.
const rssTarget = 100 << 10

// target returns the ratio a job on a volume with repl replicas must reach.
func target(c class, repl int) (float64, bool) {
	t, ok := targets[repl][c]
	return t, ok
}

// verdict says whether got meets want.
func verdict(meets bool) string {
	if meets {
		return "meets"
	}
	return "**below**"
}

// ratio is got/base, or 0 when either is missing.
func ratio(got, base float64) float64 {
	if base <= 0 || got <= 0 {
		return 0
	}
	return got / base
}

// target under test in the fio table.
type fioTarget struct {
	label string // column heading
	repl  int    // 0 for the baseline and the peer
	peer  bool   // another system (GlusterFS): no targets of its own
	res   map[string]result
	err   error              // the whole target failed
	want  map[string]float64 // per-job targets; nil: the repl's class targets
	// encrypted: an encrypted volume, judged against the same repl in
	// clear (renderEncryption), not against the baseline: against pair,
	// the volume in clear measured in turn with it.
	encrypted bool
	pair      *fioTarget
}

// target returns the ratio job j must reach on t.
func (t fioTarget) target(j job) (float64, bool) {
	if t.peer {
		return 0, false
	}
	if t.want != nil {
		w, ok := t.want[j.name]
		return w, ok
	}
	return target(j.class, t.repl)
}

// report collects everything measured; render formats it as Markdown.
type report struct {
	context     [][2]string // key, value
	fioNote     string
	jobs        []job
	targets     []fioTarget // baseline first
	snaps       []snapResult
	skipSnap    bool
	mems        []memResult
	skipRSS     bool
	backups     []backupStep // baseline first
	skipBackups bool
	copies      *copyCost  // nil: not measured (no fsync job selected)
	reads       *readCost  // nil: not measured (no random read job selected)
	pg          []pgResult // host directory first
	skipPG      bool
	cluster     *clusterReport
	workload    *workloadReport
	errs        []string // failures outside the tables
	checked     int      // targets checked
	missed      []string // targets missed
}

// fioCell formats a result for the table.
func fioCell(r result, ok bool, u unit) string {
	switch {
	case !ok:
		return "—"
	case r.Err != nil:
		return "failed"
	case u == iops:
		return fmt.Sprintf("%.0f", r.IOPS)
	default:
		return fmt.Sprintf("%.1f", r.MiBs)
	}
}

// ratioCells returns the ratio and target cells of one job on one volume
// and records the verdict.
func (rp *report) ratioCells(j job, t fioTarget, base result, baseOK bool) (string, string) {
	r, ok := t.res[j.name]
	want, hasTarget := t.target(j)
	wantCell := "—"
	if hasTarget {
		wantCell = fmt.Sprintf("≥ %.2f", want)
	}
	if !ok || r.Err != nil || !baseOK || base.Err != nil {
		if hasTarget {
			rp.checked++
			rp.missed = append(rp.missed, fmt.Sprintf("%s %s (not measured)", t.label, j.name))
			wantCell += " **not measured**"
		}
		return "—", wantCell
	}
	q := ratio(r.value(j.unit), base.value(j.unit))
	if hasTarget {
		rp.checked++
		meets := q >= want
		if !meets {
			rp.missed = append(rp.missed, fmt.Sprintf("%s %s %.2fx < %.2fx", t.label, j.name, q, want))
		}
		wantCell += " " + verdict(meets)
	}
	return fmt.Sprintf("%.2fx", q), wantCell
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

func mib(kib int64) string { return fmt.Sprintf("%.1f", float64(kib)/1024) }

// median of ds (the upper one for an even count); ds must not be empty.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// render returns the report as Markdown.
func (rp *report) render() string {
	rp.checked, rp.missed = 0, nil
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	p("# Ballast benchmark\n\n")
	for _, kv := range rp.context {
		p("- %s: %s\n", kv[0], kv[1])
	}

	p("\n## Data path: fio on ext4\n\n%s\n\n", rp.fioNote)
	rp.fioTable(p, rp.targets)
	rp.renderCeiling(p)
	rp.renderCopies(p)
	rp.renderSeries(p)
	rp.renderEncryption(p)
	rp.renderPeer(p)
	rp.renderPG(p)
	p("\n## Snapshot creation\n\n")
	if rp.skipSnap {
		p("Skipped (--skip-snapshots).\n")
	} else {
		p("Time of `CreateSnapshot` through the API (client to daemon and back) on an ext4 volume holding %s of data. "+
			"Attached, the filesystem is frozen for the snapshot, and freezing ext4 first flushes and checkpoints what was written since the last freeze: "+
			"that part grows with recent writes, not with the volume's size. Target: well under %d ms for the snapshot itself (attached idle, detached).\n\n",
			strings.TrimSuffix(snapshotWrite, "M")+" MiB", snapshotTarget.Milliseconds())
		p("| Volume | Size | Situation | Snapshots | Median ms | Max ms | Target |\n|---|--:|---|--:|--:|--:|---|\n")
		for _, s := range rp.snaps {
			target := "—"
			if len(s.times) == 0 {
				if s.target {
					target = fmt.Sprintf("< %d ms **not measured**", snapshotTarget.Milliseconds())
					rp.checked++
					rp.missed = append(rp.missed, fmt.Sprintf("snapshots of %s, %s (not measured)", s.volume, s.mode))
				}
				p("| %s | %s | %s | 0 | — | — | %s |\n", s.volume, sizeString(s.size), s.mode, target)
				continue
			}
			mx := slices.Max(s.times)
			if s.target {
				rp.checked++
				if mx >= snapshotTarget {
					rp.missed = append(rp.missed, fmt.Sprintf("snapshot of %s, %s, took up to %s ms", s.volume, s.mode, ms(mx)))
				}
				target = fmt.Sprintf("< %d ms %s", snapshotTarget.Milliseconds(), verdict(mx < snapshotTarget))
			}
			p("| %s | %s | %s | %d | %s | %s | %s |\n", s.volume, sizeString(s.size), s.mode, len(s.times),
				ms(median(s.times)), ms(mx), target)
		}
		for _, s := range rp.snaps {
			if s.err != nil {
				p("\n%s: %s\n", s.volume, oneLine(s.err))
			}
		}
	}

	rp.renderBackups(p)

	p("\n## Daemon memory\n\n")
	if rp.skipRSS {
		p("Skipped (--skip-rss).\n")
	} else {
		p("VmRSS and VmHWM (peak) from `/proc/PID/status` of the daemon process; target: VmRSS < %d MiB with 10 attached volumes.\n\n", rssTarget>>10)
		p("| Phase | Attached volumes | VmRSS MiB | VmHWM MiB | Target |\n|---|--:|--:|--:|---|\n")
		for _, m := range rp.mems {
			if m.err != nil {
				p("| %s | %d | — | — | not measured: %s |\n", m.phase, m.volumes, oneLine(m.err))
				if m.volumes == 10 {
					rp.checked++
					rp.missed = append(rp.missed, "daemon RSS (not measured)")
				}
				continue
			}
			want := "—"
			if m.volumes == 10 {
				rp.checked++
				meets := m.mem.RSS < rssTarget
				if !meets {
					rp.missed = append(rp.missed, fmt.Sprintf("daemon VmRSS %s MiB with 10 volumes", mib(m.mem.RSS)))
				}
				want = fmt.Sprintf("< %d MiB %s", rssTarget>>10, verdict(meets))
			}
			p("| %s | %d | %s | %s | %s |\n", m.phase, m.volumes, mib(m.mem.RSS), mib(m.mem.HWM), want)
		}
	}

	rp.renderCluster(p)
	rp.renderWorkload(p)

	p("\n## Summary\n\n")
	p("%d of %d targets met.\n", rp.checked-len(rp.missed), rp.checked)
	for _, m := range rp.missed {
		p("- below target: %s\n", m)
	}
	for _, e := range rp.errs {
		p("- error: %s\n", oneLine(e))
	}
	return b.String()
}

// fioTable prints the fio table for targets (baseline first).
func (rp *report) fioTable(p func(string, ...any), targets []fioTarget) {
	if len(targets) > 0 {
		base := targets[0]
		p("| Job | Unit | %s |", base.label)
		for _, t := range targets[1:] {
			p(" %s | ratio | target |", t.label)
		}
		p("\n|---|---|--:|")
		for range targets[1:] {
			p("--:|--:|---|")
		}
		p("\n")
		for _, j := range rp.jobs {
			br, bok := base.res[j.name]
			p("| %s | %s | %s |", j.name, j.unit, fioCell(br, bok, j.unit))
			for _, t := range targets[1:] {
				r, ok := t.res[j.name]
				q, want := rp.ratioCells(j, t, br, bok)
				p(" %s | %s | %s |", fioCell(r, ok, j.unit), q, want)
			}
			p("\n")
		}
		for _, t := range targets {
			if t.err != nil {
				p("\n%s failed: %s\n", t.label, oneLine(t.err))
			}
			for _, j := range rp.jobs {
				if r, ok := t.res[j.name]; ok && r.Err != nil {
					p("\n%s %s failed: %s\n", t.label, j.name, oneLine(r.Err))
				}
			}
		}
	}

}

// sizeString formats a byte count as the CLI does (1G, 64G).
func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}

// oneLine keeps the first line of an error, so a table stays a table.
func oneLine(v any) string {
	s := fmt.Sprint(v)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

// renderPeer prints Ballast repl 2 against GlusterFS replica 2, job by job,
// when both ran.
func (rp *report) renderPeer(p func(string, ...any)) {
	var r2, peer *fioTarget
	for i := range rp.targets {
		switch t := &rp.targets[i]; {
		case t.peer:
			peer = t
		case t.repl == 2 && !t.encrypted:
			r2 = t
		}
	}
	if peer == nil || r2 == nil {
		return
	}
	p("\n**Against GlusterFS replica 2** (the same jobs; Ballast repl 2 / GlusterFS; target ≥ %.0fx on every job):\n\n", peerTarget)
	p("| Job | Unit | Ballast repl 2 | %s | Ballast / GlusterFS | Target |\n|---|---|--:|--:|--:|---|\n", glusterLabel)
	for _, j := range rp.jobs {
		a, aok := r2.res[j.name]
		b, bok := peer.res[j.name]
		ok := aok && bok && a.Err == nil && b.Err == nil && b.value(j.unit) > 0
		q := 0.0
		if ok {
			q = ratio(a.value(j.unit), b.value(j.unit))
		}
		p("| %s | %s | %s | %s | %s | %s |\n", j.name, j.unit, fioCell(a, aok, j.unit), fioCell(b, bok, j.unit), ratioString(q, ok),
			rp.judge("repl 2 vs GlusterFS "+j.name, fmt.Sprintf("≥ %.0fx", peerTarget), ok, q >= peerTarget, fmt.Sprintf("%.2fx < %.0fx", q, peerTarget)))
	}
}

// pgResult returns the pgbench result labelled label; a missing one is an
// error result.
func (rp *report) pgResult(label string) pgResult {
	for _, r := range rp.pg {
		if r.label == label {
			return r
		}
	}
	return pgResult{label: label, err: errors.New("not run")}
}

// renderPG prints the pgbench section.
func (rp *report) renderPG(p func(string, ...any)) {
	p("\n## PostgreSQL: pgbench\n\n")
	if rp.skipPG {
		p("Skipped (--skip-pgbench).\n")
		return
	}
	if len(rp.pg) == 0 {
		p("Not run.\n")
		return
	}
	p("PostgreSQL (Debian's, default settings: fsync on, synchronous_commit on) with its data directory on each target in turn: "+
		"`pgbench -i -s %d`, then `pgbench -c %d -j 2 -T <duration>` (TPCB-like); TPS without the initial connection time; "+
		"ratio = TPS / TPS on the host directory (the host disk's ext4, the same disk the pool dirs and bricks are on); "+
		"the targets are set against it. Ballast volumes are ext4 on the single-node daemon above. "+
		"Every Ballast volume is ext4 on a loop device (over the daemon's FUSE file: the only block device path this kernel has), "+
		"so the row \"%s\" (ext4 on a loop device over a host file, as the fio baseline) is the most any volume can reach here; "+
		"the last column is the ratio to it.\n\n", pgScale, pgClients, pgLabelLoop)
	p("| Data directory on | TPS | ratio | target | ratio to %s |\n|---|--:|--:|---|--:|\n", pgLabelLoop)
	host, loop := rp.pgResult(pgLabelHost), rp.pgResult(pgLabelLoop)
	for _, r := range rp.pg {
		cell := "failed"
		if r.err == nil {
			cell = fmt.Sprintf("%.0f", r.tps)
		}
		if r.label == pgLabelHost {
			p("| %s | %s | — | — | — |\n", r.label, cell)
			continue
		}
		ok := r.err == nil && host.err == nil && host.tps > 0
		q := 0.0
		if ok {
			q = r.tps / host.tps
		}
		want, has := pgTargets[r.label]
		wantCell := "—"
		if has {
			wantCell = rp.judge("pgbench "+r.label, fmt.Sprintf("≥ %.2f", want), ok, q >= want, fmt.Sprintf("%.2fx < %.2fx", q, want))
		}
		lok := r.label != pgLabelLoop && r.err == nil && loop.err == nil && loop.tps > 0
		p("| %s | %s | %s | %s | %s |\n", r.label, cell, ratioString(q, ok), wantCell, ratioString(ratio(r.tps, loop.tps), lok))
	}
	for _, r := range rp.pg {
		if r.err != nil {
			p("\n%s: %s\n", r.label, oneLine(r.err))
		}
	}
}

// renderCopies prints what a second synchronous copy costs the host disk
// beside what it costs Ballast (repl 2 against repl 1 on the fsync job).
func (rp *report) renderCopies(p func(string, ...any)) {
	if rp.copies == nil {
		return
	}
	p("\n**What the second copy costs.** Repl 2 on one node keeps both copies on the same host disk, and a write with an fsync " +
		"is done when both copies are durable. The limit this disk sets: 4 KiB buffered writes at random offsets with an fdatasync each, " +
		"one at a time, on one prefilled 1 GiB file in the scratch dir, then on two files at once (both writes and fdatasyncs in parallel, " +
		"as the engine fans out to its replicas). Beside it, Ballast repl 2 against repl 1 on the fsync job above.\n\n")
	p("| | one copy | two copies | two / one |\n|---|--:|--:|--:|\n")
	if c := rp.copies; c.err != nil {
		p("| host disk: write + fdatasync, ops/s | failed | failed | — |\n")
	} else {
		p("| host disk: write + fdatasync, ops/s | %.0f | %.0f | %s |\n", c.one, c.two, ratioString(ratio(c.two, c.one), true))
	}
	var r1, r2 result
	var ok1, ok2 bool
	for _, t := range rp.targets {
		switch {
		case t.peer, t.encrypted:
		case t.repl == 1:
			r1, ok1 = t.res["write-4k-fsync1"]
		case t.repl == 2:
			r2, ok2 = t.res["write-4k-fsync1"]
		}
	}
	ok := ok1 && ok2 && r1.Err == nil && r2.Err == nil
	p("| Ballast write-4k-fsync1 (repl 1, repl 2), IOPS | %s | %s | %s |\n", fioCell(r1, ok1, iops), fioCell(r2, ok2, iops),
		ratioString(ratio(r2.IOPS, r1.IOPS), ok && r1.IOPS > 0))
	if rp.copies.err != nil {
		p("\n%s\n", oneLine(rp.copies.err))
	}
}

// renderCeiling prints Ballast repl 1 against the FUSE + loop transport
// over memory, job by job: what the engine, the replica and the host disk
// cost beyond the transport every volume goes through here.
func (rp *report) renderCeiling(p func(string, ...any)) {
	var ceiling, r1 *fioTarget
	for i := range rp.targets {
		switch t := &rp.targets[i]; {
		case t.label == ceilingLabel:
			ceiling = t
		case t.repl == 1 && !t.encrypted:
			r1 = t
		}
	}
	if ceiling == nil || r1 == nil {
		return
	}
	p("\n**The transport's ceiling.** Every volume reaches the kernel as a FUSE file on a loop device. The column %q above is ext4 on that "+
		"same transport (fuseloop, in the bench's own process) over an in-memory device: no engine, replicas, checksums or disk. "+
		"It is the most any volume can reach here through FUSE and a loop device; Ballast repl 1 against it:\n\n", ceilingLabel)
	p("| Job | Unit | %s | Ballast repl 1 | repl 1 / ceiling |\n|---|---|--:|--:|--:|\n", ceilingLabel)
	for _, j := range rp.jobs {
		a, aok := r1.res[j.name]
		b, bok := ceiling.res[j.name]
		ok := aok && bok && a.Err == nil && b.Err == nil && b.value(j.unit) > 0
		p("| %s | %s | %s | %s | %s |\n", j.name, j.unit, fioCell(b, bok, j.unit), fioCell(a, aok, j.unit),
			ratioString(ratio(a.value(j.unit), b.value(j.unit)), ok))
	}
}

// renderSeries prints, for the jobs where a volume's request passes the
// transport and then the host disk one after the other, the two limits
// measured alone, what they allow in series (1 / (1/a + 1/b): on CPUs both
// use fully for random reads, latencies that add up at queue depth 1 for
// fsync) and Ballast against it.
func (rp *report) renderSeries(p func(string, ...any)) {
	var ceiling *fioTarget
	byRepl := map[int]*fioTarget{}
	for i := range rp.targets {
		switch t := &rp.targets[i]; {
		case t.label == ceilingLabel:
			ceiling = t
		case !t.peer && !t.encrypted && t.repl > 0:
			byRepl[t.repl] = t
		}
	}
	type row struct {
		job, disk string
		repl      int
		diskOps   float64
		diskErr   error
	}
	var rows []row
	if rc := rp.reads; rc != nil {
		rows = append(rows, row{randReadJob, fmt.Sprintf("4 KiB O_DIRECT random reads, %d goroutines", readers), 1, rc.iops, rc.err})
	}
	if c := rp.copies; c != nil {
		rows = append(rows, row{fsyncJob, "write + fdatasync, one copy", 1, c.one, c.err},
			row{fsyncJob, "write + fdatasync, two copies", 2, c.two, c.err})
	}
	if ceiling == nil || len(rows) == 0 {
		return
	}
	p("\n**Limits in series.** A volume's request goes through the transport, then to the host disk. Random reads at queue depth 16 " +
		"are bound by CPU on these 2 vCPUs and the two take turns on it; a write with an fsync waits for one, then the other. " +
		"Either way the two limits, each measured alone, allow 1 / (1/transport + 1/disk) together. The transport: the column " +
		ceilingLabel + " above. The disk: 4 KiB O_DIRECT reads at random offsets of a prefilled 1 GiB host file from 16 goroutines " +
		"(as the daemon's FUSE readers read), and the write + fdatasync loop of the table above.\n\n")
	p("| Job | Ballast | transport | host disk alone | the two in series | Ballast | Ballast / series |\n|---|---|--:|---|--:|--:|--:|\n")
	for _, r := range rows {
		tr, tok := ceiling.res[r.job]
		b, bok := byRepl[r.repl].resOf(r.job)
		limit := inSeries(tr.IOPS, r.diskOps)
		okLimit := tok && tr.Err == nil && r.diskErr == nil && limit > 0
		diskCell := "failed"
		if r.diskErr == nil {
			diskCell = fmt.Sprintf("%.0f", r.diskOps)
		}
		limitCell := "—"
		if okLimit {
			limitCell = fmt.Sprintf("%.0f", limit)
		}
		p("| %s | repl %d | %s | %s: %s | %s | %s | %s |\n", r.job, r.repl, fioCell(tr, tok, iops), r.disk, diskCell, limitCell,
			fioCell(b, bok, iops), ratioString(ratio(b.IOPS, limit), okLimit && bok && b.Err == nil))
	}
	if rc := rp.reads; rc != nil && rc.err != nil {
		p("\n%s\n", oneLine(rc.err))
	}
}

// resOf returns t's result of job; t may be nil.
func (t *fioTarget) resOf(job string) (result, bool) {
	if t == nil {
		return result{}, false
	}
	r, ok := t.res[job]
	return r, ok
}
