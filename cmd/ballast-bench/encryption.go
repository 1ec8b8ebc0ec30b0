package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"

	"github.com/ballast-io/ballast/pool/spec"
)

// encryptionTarget is the least an encrypted volume must reach against
// the same volume in clear.
const encryptionTarget = 0.9

// encryptionRounds is how many times the jobs run on each encrypted
// volume and on the same volume in clear, in turn: the machines' speed
// drifts by tens of percent within minutes, more than encryption costs,
// so each is measured beside the other, and their means compared.
const encryptionRounds = 2

// measureEncrypted runs the jobs on encrypted repl 1 and repl 2 volumes of
// daemon d, under a secret it sets first, in turn with volumes in clear.
func measureEncrypted(ctx context.Context, c config, d *daemon, fr *fioRunner, sel []job, rp *report, logger *slog.Logger) error {
	if _, err := d.client.SetSecret(ctx, "bench", []byte("the ballast-bench passphrase")); err != nil {
		rp.targets = append(rp.targets, fioTarget{label: "encrypted", encrypted: true, err: fmt.Errorf("set the secret: %w", err)})
		return ctx.Err()
	}
	for _, repl := range []int{1, 2} {
		var clear, enc []map[string]result
		var clearErr, encErr error
		for round := range encryptionRounds {
			for _, encrypted := range []bool{false, true} {
				v := spec.Volume{Name: fmt.Sprintf("bench-clear-r%d", repl), Size: c.size, Repl: repl, FS: "ext4"}
				tag := fmt.Sprintf("clear-repl%d-%d", repl, round)
				if encrypted {
					v.Name, v.Encrypted, v.SecretKey = fmt.Sprintf("bench-enc-r%d", repl), true, "bench"
					tag = fmt.Sprintf("enc-repl%d-%d", repl, round)
				}
				logger.Info("ballast volume, encryption pair", "name", v.Name, "repl", repl, "round", round, "size", sizeString(c.size))
				res, err := specFio(ctx, d, fr, v, tag, sel)
				if encrypted {
					enc, encErr = append(enc, res), cmp.Or(encErr, err)
				} else {
					clear, clearErr = append(clear, res), cmp.Or(clearErr, err)
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
			}
		}
		pair := &fioTarget{label: fmt.Sprintf("repl %d in clear", repl), repl: repl, res: meanResults(clear), err: clearErr}
		rp.targets = append(rp.targets, fioTarget{label: fmt.Sprintf("repl %d encrypted", repl), repl: repl, res: meanResults(enc), err: encErr,
			encrypted: true, want: map[string]float64{}, pair: pair})
	}
	return nil
}

// meanResults is each job's mean over runs; a job that failed in one run
// keeps that run's error.
func meanResults(runs []map[string]result) map[string]result {
	out := map[string]result{}
	for _, run := range runs {
		for job, r := range run {
			m := out[job]
			m.Err = cmp.Or(m.Err, r.Err)
			m.IOPS += r.IOPS / float64(len(runs))
			m.MiBs += r.MiBs / float64(len(runs))
			out[job] = m
		}
	}
	return out
}

// renderEncryption prints each encrypted volume against the same repl in
// clear, job by job, against encryptionTarget.
func (rp *report) renderEncryption(p func(string, ...any)) {
	inClear := map[int]*fioTarget{}
	var enc []*fioTarget
	for i := range rp.targets {
		switch t := &rp.targets[i]; {
		case t.encrypted:
			enc = append(enc, t)
		case t.repl > 0 && !t.peer:
			inClear[t.repl] = t
		}
	}
	if len(enc) == 0 {
		return
	}
	p("\n**Encryption at rest.** Encrypted volumes (AES-XTS-256 per 4 KiB block on the attach node, `--encrypted`) against the same repl in clear, each measured %d times in turn with the other, means (target ≥ %.1fx):\n\n", encryptionRounds, encryptionTarget)
	p("| Job | Unit | Volume | In clear | Encrypted | Encrypted / clear | Target |\n|---|---|---|--:|--:|--:|---|\n")
	for _, e := range enc {
		c := cmp.Or(e.pair, inClear[e.repl])
		for _, j := range rp.jobs {
			var a, b result
			var aok, bok bool
			if c != nil {
				a, aok = c.resOf(j.name)
			}
			b, bok = e.resOf(j.name)
			ok := aok && bok && a.Err == nil && b.Err == nil && e.err == nil
			q := 0.0
			if ok {
				q = ratio(b.value(j.unit), a.value(j.unit))
			}
			what := fmt.Sprintf("%s %s / clear", e.label, j.name)
			verdict := rp.judge(what, fmt.Sprintf("≥ %.1f", encryptionTarget), ok && q > 0, q >= encryptionTarget, fmt.Sprintf("%.2fx < %.1fx", q, encryptionTarget))
			p("| %s | %s | %s | %s | %s | %s | %s |\n", j.name, j.unit, e.label, fioCell(a, aok, j.unit), fioCell(b, bok, j.unit), ratioString(q, ok && q > 0), verdict)
		}
	}
}
