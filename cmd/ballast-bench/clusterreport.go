package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// judge records a target and returns its cell: want, then the verdict.
// measured false counts it as missed (not measured).
func (rp *report) judge(what, want string, measured, meets bool, missed string) string {
	rp.checked++
	if !measured {
		rp.missed = append(rp.missed, what+" (not measured)")
		return want + " **not measured**"
	}
	if !meets {
		rp.missed = append(rp.missed, what+" "+missed)
	}
	return want + " " + verdict(meets)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }

// renderCluster prints the cluster section.
func (rp *report) renderCluster(p func(string, ...any)) {
	cr := rp.cluster
	p("\n## Cluster: 3 nodes\n\n")
	if cr == nil {
		p("Not run.\n")
		return
	}
	if cr.skipped {
		p("Skipped (--skip-cluster).\n")
		return
	}
	p("Three daemons (a, b, c) on this machine, each with one pool dir in the scratch dir (all on the same host disk), " +
		"an external etcd (Debian's `etcd`, loopback), replica servers on loopback with a shared secret, default settings " +
		"(lease TTL 5 s) except `--rebuild-delay 1s` for the rebuild part (daemons restarted with it, same dirs and etcd). " +
		"The failover trials run on another three daemons that run the cluster's embedded etcd as its three members (as `make demo`'s managers do).\n")
	if cr.err != nil {
		p("\nNot measured: %s\n", oneLine(cr.err))
	}

	p("\n### Replication across nodes\n\n")
	p("The same fio jobs on ext4 volumes of the same size created and attached on node a, against the same baseline as above. " +
		"Every write goes to the other node(s) over loopback TCP and to the same host disk.\n\n")
	if len(cr.fio) == 0 {
		cr.fio = []fioTarget{{label: "cluster repl 2", repl: 2, want: clusterFioTargets[2], err: cr.err}}
	}
	var base fioTarget
	if len(rp.targets) > 0 {
		base = rp.targets[0]
	} else {
		base = fioTarget{label: "baseline (loop)"}
	}
	rp.fioTable(p, append([]fioTarget{base}, cr.fio...))
	rp.renderNetworkCost(p, cr.fio)

	p("\n### Failover\n\n")
	p("Three daemons a, b, c, each a member of the cluster's embedded etcd (a starts it, b and c join), with `--lease-ttl %s` and the label node=<id>. "+
		"Each trial: a repl 2, %s volume (ext4 or xfs) with replicas on X and Y only (the third node is avoided by its label), attached on X with %d MiB written and fsynced; "+
		"X fails: `kill -9` of its daemon (killed: X is an etcd follower; leader killed: X is the etcd leader, so etcd first elects another before anything can be decided), "+
		"or SIGSTOP of it (frozen, a follower: hung, its kernel still accepts connections, as a stalled machine's would); "+
		"`AttachVolume` on Y every 100 ms until it succeeds; then a 4 KiB write + fsync on Y's mount. "+
		"X is restarted (or resumed with SIGCONT: it finds the volume taken over and lets go of it) and the volume deleted. "+
		"Detection: failure → the first attach call that is not refused as in use (X declared dead: its heartbeats stopped or its lease expired); attach: that call's duration, "+
		"split by Y's `volume attached` log line into claim (etcd), open (replicas opened and fenced) and mount (fs check/journal replay and mount). "+
		"Target: median failure → first write < %s for each filesystem and way of failing.\n\n", failoverLease, sizeString(failoverVolumeSize), failoverData, failoverTarget)
	if cr.failoverErr != nil {
		p("Not measured: %s\n\n", oneLine(cr.failoverErr))
	}
	p("| Trial | FS | X | Failure | Attached on | Detection s | Attach s | claim ms | open ms | mount ms | First write ms | Failure → write s |\n")
	p("|--:|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	type group struct {
		fs  string
		how failure
	}
	totals := map[group][]time.Duration{}
	var groups []group
	for i, t := range cr.trials {
		g := group{t.fs, t.how}
		if _, ok := totals[g]; !ok {
			groups = append(groups, g)
			totals[g] = nil
		}
		how := t.how
		if t.err != nil {
			p("| %d | %s | %s | %s | %s | failed: %s | | | | | | |\n", i+1, t.fs, t.from, how, t.to, oneLine(t.err))
			continue
		}
		claim, open, mount := "—", "—", "—"
		if t.took != nil {
			claim, open, mount = ms(t.took.Claim), ms(t.took.Open), ms(t.took.Mount)
		}
		totals[g] = append(totals[g], t.total())
		p("| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", i+1, t.fs, t.from, how, t.to,
			secs(t.detect), secs(t.attach), claim, open, mount, ms(t.write), secs(t.total()))
	}
	for i, t := range cr.trials {
		if t.err == nil && t.took == nil {
			p("\nTrial %d: no attach split: the daemon's answer had none\n", i+1)
		}
	}
	want := fmt.Sprintf("median < %s", failoverTarget)
	p("\n| FS | Failure | Trials | Median s | Max s | Target |\n|---|---|--:|--:|--:|---|\n")
	if len(groups) == 0 {
		p("| — | — | 0 | — | — | %s |\n", rp.judge("failover", want, false, false, ""))
	}
	for _, g := range groups {
		how := string(g.how)
		n := 0
		for _, t := range cr.trials {
			if t.fs == g.fs && t.how == g.how {
				n++
			}
		}
		ts := totals[g]
		if len(ts) == 0 {
			p("| %s | %s | 0 of %d | — | — | %s |\n", g.fs, how, n, rp.judge("failover "+g.fs+" "+how, want, false, false, ""))
			continue
		}
		med := median(ts)
		p("| %s | %s | %d of %d | %s | %s | %s |\n", g.fs, how, len(ts), n, secs(med), secs(slices.Max(ts)),
			rp.judge("failover "+g.fs+" "+how, want, true, med < failoverTarget, fmt.Sprintf("median %s s", secs(med))))
	}

	p("\n### Rebuild\n\n")
	r := cr.rebuild
	if r == nil {
		r = &rebuildResult{err: cr.err}
	}
	p("A repl 2, %s ext4 volume with %s written (plus the --filesize fio file) on the owner and peer nodes, attached on the owner; `kill -9` of the peer; "+
		"with `--rebuild-delay 1s` and the default `--rebuild-mbps` (200) a new replica is rebuilt on the spare node. "+
		"Rebuild time: InspectVolume (every 100 ms) shows the rebuild running → it is gone and 2/2 replicas are in sync; "+
		"rebuild throughput = the volume's allocated bytes / that time. "+
		"Plain copy: `dd bs=1M iflag=direct oflag=direct conv=fsync` of a %s file from the owner's pool dir to the spare's "+
		"(same host disk here, as are the replicas). Foreground: fio %s (%s, direct) on the volume before the failure, and again started when the rebuild is seen running.\n\n",
		sizeString(rebuildVolumeSize), strings.TrimSuffix(rebuildData, "G")+" GiB", sizeString(rebuildBytes), jobs[0].name, "time_based")
	if r.owner != "" {
		p("Owner %s, peer (killed) %s, spare %s; rebuild seen running %s s after the kill; it went through %s (copied or skipped), the daemon's last elapsed %s.",
			r.owner, r.peer, r.spare, secs(r.wait), sizeString(r.scanned), r.elapsed)
		if r.took > 0 && r.fgShort {
			p(" The foreground fio (--runtime) ran during the first part of the rebuild only; the rebuild time includes that load.")
		} else if r.took > 0 {
			p(" The rebuild ended before the foreground fio did: part of its \"during\" number was measured without a rebuild.")
		}
		p("\n\n")
	}
	p("| Measure | Ballast | Compared with | Ratio | Target |\n|---|--:|--:|--:|---|\n")
	rebuildOK := r.err == nil && r.took > 0 && r.copyTook > 0 && r.allocated > 0
	q := 0.0
	cell, other := "—", "—"
	if r.took > 0 && r.allocated > 0 {
		cell = fmt.Sprintf("%.1f MiB/s (%s in %s s)", r.rate(), sizeString(r.allocated-r.allocated%(1<<20)), secs(r.took))
	}
	if r.copyTook > 0 {
		other = fmt.Sprintf("%.1f MiB/s (dd)", r.copyRate())
	}
	if rebuildOK {
		q = r.rate() / r.copyRate()
	}
	p("| Rebuild throughput | %s | %s | %s | %s |\n", cell, other, ratioString(q, rebuildOK),
		rp.judge("rebuild throughput", fmt.Sprintf("≥ %.2f", rebuildTarget), rebuildOK, q >= rebuildTarget, fmt.Sprintf("%.2fx < %.2fx", q, rebuildTarget)))
	fgOK := r.fgBefore.Err == nil && r.fgDuring.Err == nil && r.fgBefore.MiBs > 0 && r.fgDuring.MiBs > 0
	q = 0
	if fgOK {
		q = ratio(r.fgDuring.MiBs, r.fgBefore.MiBs)
	}
	p("| Foreground %s MiB/s during the rebuild | %s | %s (before the failure) | %s | %s |\n", jobs[0].name,
		fioCell(r.fgDuring, r.fgDuring.MiBs > 0 || r.fgDuring.Err != nil, mibPerSec), fioCell(r.fgBefore, r.fgBefore.MiBs > 0 || r.fgBefore.Err != nil, mibPerSec),
		ratioString(q, fgOK),
		rp.judge("foreground during rebuild", fmt.Sprintf("≥ %.2f", foregroundTarget), fgOK, q >= foregroundTarget, fmt.Sprintf("%.2fx < %.2fx", q, foregroundTarget)))
	if r.err != nil {
		p("\nRebuild: %s\n", oneLine(r.err))
	}
	for _, fr := range []struct {
		what string
		res  result
	}{{"before", r.fgBefore}, {"during", r.fgDuring}} {
		if fr.res.Err != nil {
			p("\nForeground fio %s: %s\n", fr.what, oneLine(fr.res.Err))
		}
	}
}

func ratioString(q float64, ok bool) string {
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.2fx", q)
}

// renderNetworkCost prints cluster repl 2 against single-node repl 2, job
// by job: the same two copies, one of them across the replica protocol
// instead of in a second pool dir of the attach node. Both runs share the
// machine's one disk, so the ratio is the network path's own cost here.
func (rp *report) renderNetworkCost(p func(string, ...any), cluster []fioTarget) {
	var local, remote *fioTarget
	for i := range rp.targets {
		if t := &rp.targets[i]; t.repl == 2 && !t.peer && !t.encrypted {
			local = t
		}
	}
	for i := range cluster {
		if cluster[i].repl == 2 {
			remote = &cluster[i]
		}
	}
	if local == nil || remote == nil {
		return
	}
	p("\nThe network path's own cost: cluster repl 2 (one replica on the attach node, one over the replica protocol) / single-node repl 2 (two pool dirs of one daemon), the same disk under both:\n\n")
	p("| Job | Unit | single-node repl 2 | cluster repl 2 | cluster / single-node |\n|---|---|--:|--:|--:|\n")
	for _, j := range rp.jobs {
		a, aok := local.res[j.name]
		b, bok := remote.res[j.name]
		ok := aok && bok && a.Err == nil && b.Err == nil
		q := 0.0
		if ok {
			q = ratio(b.value(j.unit), a.value(j.unit))
		}
		p("| %s | %s | %s | %s | %s |\n", j.name, j.unit, fioCell(a, aok, j.unit), fioCell(b, bok, j.unit), ratioString(q, ok && q > 0))
	}
}
