package demo_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/workloads/demo"
)

// TestDemo is `make demo` in small: on a 3-node Swarm (all managers; the
// first, the leader, runs no stateful service), the sensor stack from
// deploy/swarm/sensors.yml streams readings while the node running the
// CQL server is docker-killed, then the node running the broker. Swarm
// reschedules each, its volume attaches on the new node, readings are
// stored again, the killed node comes back and its replicas catch up;
// at the end every reading produced is stored, and the report says so.
func TestDemo(t *testing.T) {
	ctx, cfg := startTest(t, 15*time.Minute, "-scenario")
	c, err := demo.Up(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	report := t.TempDir()
	res, err := demo.RunScenario(ctx, c, demo.ScenarioConfig{
		Steps:     []string{demo.StepKillCQL, demo.StepKillBroker},
		Warmup:    5 * time.Second,
		Settle:    3 * time.Second,
		ReportDir: report,
	})
	if res != nil {
		if werr := demo.WriteReport(report, res); werr != nil {
			t.Errorf("write report: %v", werr)
		}
		var sum strings.Builder
		demo.Summary(&sum, res, "")
		t.Logf("summary:\n%s", sum.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() || res.Verify.Total.Missing != 0 || res.Verify.Total.Produced < 1000 {
		t.Fatalf("verdict: %s", demo.Verdict(res))
	}
	if len(res.Failovers) != 2 {
		t.Fatalf("%d failovers, want 2: %+v", len(res.Failovers), res.Failovers)
	}
	for _, fo := range res.Failovers {
		if !fo.Recovered() || fo.RunsOn == fo.Node || fo.AttachedOn == fo.BallastNode || fo.AttachedOn == "" {
			t.Errorf("%s after killing %s (Ballast node %s): runs on %q, volume attached on %q, recovered %v",
				fo.Service, fo.Node, fo.BallastNode, fo.RunsOn, fo.AttachedOn, fo.Recovered())
		}
	}
	html, err := os.ReadFile(filepath.Join(report, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "ZERO READINGS LOST") {
		t.Error("index.html does not give the verdict")
	}
	for _, f := range []string{"rates.png", "lag.png", "ingesters.png", "samples.jsonl", "result.json"} {
		if st, err := os.Stat(filepath.Join(report, f)); err != nil || st.Size() == 0 {
			t.Errorf("report file %s: %v", f, errors.Join(err, errors.New("empty")))
		}
	}
}
