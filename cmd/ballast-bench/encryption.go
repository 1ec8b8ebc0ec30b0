package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ballast-io/ballast/pool/spec"
)

// encryptionTarget is the least an encrypted volume must reach against
// the same volume in clear.
const encryptionTarget = 0.9

// measureEncrypted runs the jobs on encrypted repl 1 and repl 2 volumes of
// daemon d, under a secret it sets first.
func measureEncrypted(ctx context.Context, c config, d *daemon, fr *fioRunner, sel []job, rp *report, logger *slog.Logger) error {
	if _, err := d.client.SetSecret(ctx, "bench", []byte("the ballast-bench passphrase")); err != nil {
		rp.targets = append(rp.targets, fioTarget{label: "encrypted", encrypted: true, err: fmt.Errorf("set the secret: %w", err)})
		return ctx.Err()
	}
	for _, repl := range []int{1, 2} {
		name := fmt.Sprintf("bench-enc-r%d", repl)
		logger.Info("ballast volume, encrypted", "name", name, "repl", repl, "size", sizeString(c.size))
		res, err := specFio(ctx, d, fr, spec.Volume{Name: name, Size: c.size, Repl: repl, FS: "ext4", Encrypted: true, SecretKey: "bench"},
			fmt.Sprintf("enc-repl%d", repl), sel)
		rp.targets = append(rp.targets, fioTarget{label: fmt.Sprintf("repl %d encrypted", repl), repl: repl, res: res, err: err,
			encrypted: true, want: map[string]float64{}})
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
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
	p("\n**Encryption at rest.** Encrypted volumes (AES-XTS-256 per 4 KiB block on the attach node, `--encrypted`) against the same repl in clear, in the same run (target ≥ %.1fx):\n\n", encryptionTarget)
	p("| Job | Unit | Volume | In clear | Encrypted | Encrypted / clear | Target |\n|---|---|---|--:|--:|--:|---|\n")
	for _, e := range enc {
		c := inClear[e.repl]
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
