package demo

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// The report's charts: file name, title, y axis.
var charts = []struct{ file, title, y string }{
	{"rates.png", "Readings per second: produced and stored", "readings/s"},
	{"lag.png", "Consumer lag: produced, not yet stored", "readings"},
	{"ingesters.png", "Ingester replicas (the autoscaler)", "replicas"},
}

var (
	colProduced = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colStored   = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	colFailure  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colRunning  = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
)

// WriteReport writes dir/index.html (self-contained: the charts are
// inlined), the charts as PNGs and result.json.
func WriteReport(dir string, res *Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	pngs, err := renderCharts(res)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	for i, c := range charts {
		if err := os.WriteFile(filepath.Join(dir, c.file), pngs[i], 0o644); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), js, 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(Markdown(res)), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var buf bytes.Buffer
	if err := reportHTML.Execute(&buf, htmlData(res, pngs)); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// renderCharts draws the three charts as PNGs, each failure a dashed red
// line.
func renderCharts(res *Result) ([][]byte, error) {
	produced, stored := Rates(res.Samples, res.Start)
	want, running := Replicas(res.Samples, res.Start)
	series := [][]struct {
		name string
		pts  []Point
		col  color.Color
	}{
		{{"produced", produced, colProduced}, {"stored", stored, colStored}},
		{{"lag", Lags(res.Samples, res.Start), colProduced}},
		{{"wanted", want, colProduced}, {"running", running, colRunning}},
	}
	var out [][]byte
	for i, c := range charts {
		p := plot.New()
		p.Title.Text = c.title
		p.X.Label.Text = "seconds since the stack was deployed"
		p.Y.Label.Text = c.y
		p.Y.Min = 0
		p.Legend.Top = true
		ymax := 1.0
		for _, s := range series[i] {
			xy := make(plotter.XYs, len(s.pts))
			for j, pt := range s.pts {
				xy[j] = plotter.XY{X: pt.T.Seconds(), Y: pt.V}
				ymax = max(ymax, pt.V)
			}
			if len(xy) == 0 {
				continue
			}
			l, err := plotter.NewLine(xy)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.file, err)
			}
			l.Color = s.col
			l.Width = vg.Points(1.5)
			p.Add(l)
			p.Legend.Add(s.name, l)
		}
		marks := map[string]bool{}
		mark := func(t time.Time, name string, col color.Color) error {
			x := t.Sub(res.Start).Seconds()
			l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: ymax}})
			if err != nil {
				return err
			}
			l.Color = col
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			p.Add(l)
			if !marks[name] {
				p.Legend.Add(name, l)
				marks[name] = true
			}
			return nil
		}
		for _, fo := range res.Failovers {
			if err := mark(fo.At, "failure", colFailure); err != nil {
				return nil, err
			}
		}
		for _, e := range res.Timeline {
			if e.What == burstEvent {
				if err := mark(e.Time, "burst", colRunning); err != nil {
					return nil, err
				}
			}
		}
		p.Y.Max = ymax * 1.1
		wt, err := p.WriterTo(9*vg.Inch, 3*vg.Inch, "png")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.file, err)
		}
		var buf bytes.Buffer
		if _, err := wt.WriteTo(&buf); err != nil {
			return nil, fmt.Errorf("%s: %w", c.file, err)
		}
		out = append(out, buf.Bytes())
	}
	return out, nil
}

type htmlRow struct{ Cells []string }

type htmlChart struct {
	Title string
	Src   template.URL
}

type htmlView struct {
	OK        bool
	Verdict   string
	Steady    string
	Started   string
	Duration  string
	Nodes     []htmlRow
	Failovers []htmlRow
	Timeline  []htmlRow
	Charts    []htmlChart
	Problems  []string
}

func htmlData(res *Result, pngs [][]byte) htmlView {
	v := htmlView{
		OK:       res.OK(),
		Verdict:  Verdict(res),
		Steady:   fmt.Sprintf("%.0f", SteadyRate(res.Samples, res.Failovers, res.Timeline)),
		Started:  res.Start.UTC().Format(time.RFC3339),
		Duration: res.End.Sub(res.Start).Round(time.Second).String(),
		Problems: res.Problems,
	}
	for _, n := range res.Nodes {
		v.Nodes = append(v.Nodes, htmlRow{[]string{n.Name, n.IP, n.Role(), n.ID}})
	}
	for _, fo := range res.Failovers {
		v.Failovers = append(v.Failovers, htmlRow{failoverCells(fo)})
	}
	for _, e := range res.Timeline {
		v.Timeline = append(v.Timeline, htmlRow{[]string{fmt.Sprintf("+%.1f s", e.Time.Sub(res.Start).Seconds()), e.What, e.Detail}})
	}
	for i, c := range charts {
		v.Charts = append(v.Charts, htmlChart{c.title, template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(pngs[i]))})
	}
	return v
}

// failoverCells: what failed, the service, then seconds to reschedule,
// attach and store again ("-" when not seen), and where it runs now.
func failoverCells(fo Failover) []string {
	since := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return fmt.Sprintf("%.1f", t.Sub(fo.At).Seconds())
	}
	what := "docker kill " + fo.Node
	if fo.Kind == FailDaemon {
		what = "kill -9 serving ballast daemon on " + fo.Node
	}
	return []string{what, fo.Service, since(fo.Rescheduled), since(fo.Attached), since(fo.Resumed), fo.RunsOn}
}

// Verdict is the one-line outcome.
func Verdict(res *Result) string {
	if res.Verify == nil {
		return "NOT VERIFIED: " + strings.Join(res.Problems, "; ")
	}
	t := res.Verify.Total
	s := fmt.Sprintf("%d readings produced, %d stored, %d missing", t.Produced, t.Stored, t.Missing)
	switch {
	case !res.Verify.OK:
		return "READINGS LOST: " + s
	case res.BrokerLost:
		return "READINGS LOST: the broker lost acknowledged readings; of those left in the topic, " + s
	case len(res.Problems) > 0:
		return "NO READING LOST, but a step failed: " + s
	}
	return "ZERO READINGS LOST: " + s
}

// FailoverTarget is the target: each service writing again
// within 10 s of a non-leader node's death.
const FailoverTarget = 10 * time.Second

// meetsTarget: the service stored readings again within FailoverTarget.
func meetsTarget(fo Failover) bool {
	return fo.Recovered() && fo.Seconds() <= FailoverTarget.Seconds()
}

// targetNote says, for a node's death, whether the failover met the
// target; for a daemon killed under running containers, whether they
// carried on (the restarted daemon took their volume over) or saw I/O
// errors and were replaced.
func targetNote(fo Failover) string {
	if fo.Kind == FailDaemon {
		if fo.Rescheduled.IsZero() {
			return " (the same containers carried on: the restarted daemon took their volume over)"
		}
		return " (the containers on that node saw I/O errors and were replaced)"
	}
	if meetsTarget(fo) {
		return fmt.Sprintf(": target <= %.0f s meets", FailoverTarget.Seconds())
	}
	return fmt.Sprintf(": target <= %.0f s BELOW", FailoverTarget.Seconds())
}

// Markdown is the run's figures as the README's benchmark table: the
// steady rate, then per failure the seconds to Swarm's new task running,
// to the volume attached, to the first reading stored, against the 10 s
// target, and the verdict.
func Markdown(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| Measure | Result | Target |\n|---|--:|---|\n")
	fmt.Fprintf(&b, "| Steady state, readings stored/s | %.0f | — |\n", SteadyRate(res.Samples, res.Failovers, res.Timeline))
	for _, fo := range res.Failovers {
		c := failoverCells(fo)
		target := "—"
		if fo.Kind == FailKillNode {
			verdict := "**below**"
			if meetsTarget(fo) {
				verdict = "meets"
			}
			target = fmt.Sprintf("storing within %.0f s %s", FailoverTarget.Seconds(), verdict)
		}
		fmt.Fprintf(&b, "| %s (%s): new task running / volume attached / storing again, s | %s / %s / %s | %s |\n",
			c[0], c[1], c[2], c[3], c[4], target)
	}
	for _, e := range Scaling(res.Samples) {
		fmt.Fprintf(&b, "| Autoscaler, +%.0f s | %s | — |\n", e.Time.Sub(res.Start).Seconds(), e.Detail)
	}
	lost := "**lost**"
	if res.OK() {
		lost = "meets"
	}
	fmt.Fprintf(&b, "| Verdict | %s | zero lost %s |\n", Verdict(res), lost)
	return b.String()
}

// Summary prints the one-screen summary.
func Summary(w io.Writer, res *Result, dir string) {
	fmt.Fprintf(w, "\n%s\n\n", Verdict(res))
	fmt.Fprintf(w, "steady state: %.0f readings/s stored\n", SteadyRate(res.Samples, res.Failovers, res.Timeline))
	for _, fo := range res.Failovers {
		fmt.Fprintf(w, "%s storing again after %.1f s%s\n", fo.Service, fo.Seconds(), targetNote(fo))
	}
	fmt.Fprintln(w)
	if len(res.Failovers) > 0 {
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FAILURE\tSERVICE\tRESCHEDULED (s)\tVOLUME ATTACHED (s)\tSTORING AGAIN (s)\tNOW ON")
		for _, fo := range res.Failovers {
			fmt.Fprintln(tw, strings.Join(failoverCells(fo), "\t"))
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	for _, e := range Scaling(res.Samples) {
		fmt.Fprintf(w, "+%.0f s  %s: %s\n", e.Time.Sub(res.Start).Seconds(), e.What, e.Detail)
	}
	for _, p := range res.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	if dir != "" {
		fmt.Fprintf(w, "report: %s\n", filepath.Join(dir, "index.html"))
	}
}

var reportHTML = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Ballast demo: {{.Verdict}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;color:#222}
.verdict{font-size:1.4em;padding:.6em 1em;border-radius:.3em;color:#fff}
.ok{background:#2ca02c}.bad{background:#d62728}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f4f4f4}img{max-width:100%}
</style></head><body>
<h1>Ballast demo: the sensor pipeline on Docker Swarm, nodes killed</h1>
<p class="verdict {{if .OK}}ok{{else}}bad{{end}}">{{.Verdict}}</p>
<p>Started {{.Started}}, ran {{.Duration}}. The broker and the CQL server keep their data on Ballast volumes (repl 2);
when their node dies Swarm starts them on another node and the volume follows, the old attachment fenced.
At the end every reading in the topic is looked up in the store (<code>ballast workload verify</code>).
In steady state {{.Steady}} readings/s were stored.</p>
{{range .Problems}}<p class="verdict bad">{{.}}</p>{{end}}
<h2>Failovers</h2>
<table><tr><th>failure</th><th>service</th><th>rescheduled (s)</th><th>volume attached (s)</th><th>storing again (s)</th><th>now on</th></tr>
{{range .Failovers}}<tr>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
{{range .Charts}}<h2>{{.Title}}</h2><img alt="{{.Title}}" src="{{.Src}}">{{end}}
<h2>Timeline</h2>
<table><tr><th>time</th><th>event</th><th>detail</th></tr>
{{range .Timeline}}<tr>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
<h2>Nodes</h2>
<table><tr><th>node</th><th>address</th><th>Swarm role</th><th>Ballast node</th></tr>
{{range .Nodes}}<tr>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>{{end}}</table>
</body></html>
`))
