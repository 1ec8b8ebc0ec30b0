package demo

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/workloads/sensors"
)

var t0 = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

// at is second s of the test's timeline.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// mk makes one sample: committed readings (-1: the broker did not
// answer), where cql runs (node and task, "" for no task), the cql
// volume's attachment and epoch, and the ingesters wanted.
func mk(s float64, committed int64, node, task, attached string, epoch uint64, ingesters int) Sample {
	smp := Sample{Time: at(s), Services: map[string]ServiceState{IngesterService: {Want: ingesters, Nodes: []string{"n1"}, Tasks: []string{"i1"}}},
		Volumes: map[string]VolumeState{"sensors_cql-data": {Attached: attached, Epoch: epoch, Repl: 2, InSync: 2}}}
	if committed >= 0 {
		smp.Kafka = &sensors.Progress{Produced: int64(s * 100), End: int64(s * 100), Committed: committed}
	} else {
		smp.KafkaError = "broker down"
	}
	st := ServiceState{Want: 1}
	if task != "" {
		st.Nodes, st.Tasks = []string{node}, []string{task}
	}
	smp.Services[CQLService] = st
	return smp
}

// failoverSamples: cql on node2 (task a) is killed at 10 s; its volume is
// attached on node4 at 13 s (epoch 3), the task b runs there from 15 s,
// and readings are stored again at 17 s. A commit in flight at 11 s (the
// ingester's last before the store died) must not count as recovery.
func failoverSamples() []Sample {
	return []Sample{
		mk(8, 700, "node2", "a", "node2", 2, 1),
		mk(9, 800, "node2", "a", "node2", 2, 1),
		mk(10, 900, "node2", "a", "node2", 2, 1),
		mk(11, 950, "node2", "a", "node2", 2, 1),
		mk(12, 950, "", "", "node2", 2, 1),
		mk(13, 950, "", "", "node4", 3, 1),
		mk(14, -1, "", "", "node4", 3, 2),
		mk(15, 950, "node4", "b", "node4", 3, 2),
		mk(16, 950, "node4", "b", "node4", 3, 2),
		mk(17, 1400, "node4", "b", "node4", 3, 1),
		mk(18, 1500, "node4", "b", "node4", 3, 1),
	}
}

func TestAnalyze(t *testing.T) {
	f := Failure{Kind: FailKillNode, At: at(10), Node: "node2", Service: CQLService, Volume: "sensors_cql-data", Tasks: []string{"a"}, Epoch: 2}
	fo := Analyze(failoverSamples(), f)
	if !fo.Rescheduled.Equal(at(15)) || fo.RunsOn != "node4" {
		t.Errorf("rescheduled %v on %q, want +15s on node4", fo.Rescheduled.Sub(t0), fo.RunsOn)
	}
	if !fo.Attached.Equal(at(13)) || fo.AttachedOn != "node4" {
		t.Errorf("attached %v on %q, want +13s on node4", fo.Attached.Sub(t0), fo.AttachedOn)
	}
	if !fo.Resumed.Equal(at(17)) || fo.Seconds() != 7 {
		t.Errorf("resumed %v (%.1f s), want +17s (7 s)", fo.Resumed.Sub(t0), fo.Seconds())
	}

	// A daemon restart: the same task keeps running (it never died), so
	// nothing counts as rescheduled or resumed.
	f.Kind, f.Tasks = FailDaemon, []string{"b"}
	fo = Analyze(failoverSamples()[7:], Failure{Kind: FailDaemon, At: at(15), Service: CQLService, Volume: "sensors_cql-data", Tasks: []string{"b"}, Epoch: 3})
	if fo.Recovered() || fo.Seconds() != -1 || !fo.Rescheduled.IsZero() || !fo.Attached.IsZero() {
		t.Errorf("task never replaced: %+v, want nothing seen", fo)
	}

	// A daemon killed under task b at 20 s; the restarted daemon takes
	// the volume over (epoch 4) at 22 s under the same task; readings
	// produced after the failure are stored from 24 s. The commit at 21
	// s, before the takeover, does not count, nor the backlog at 23 s.
	takeover := []Sample{
		mk(19, 1600, "node4", "b", "node4", 3, 1),
		mk(20, 1700, "node4", "b", "node4", 3, 1),
		mk(21, 1750, "node4", "b", "node4", 3, 1),
		mk(22, 1750, "node4", "b", "node4", 4, 1),
		mk(23, 1900, "node4", "b", "node4", 4, 1), // the backlog: readings produced before the failure
		mk(24, 2100, "node4", "b", "node4", 4, 1), // past what was produced at +20 s
	}
	fo = Analyze(takeover, Failure{Kind: FailDaemon, At: at(20), Service: CQLService, Volume: "sensors_cql-data", Tasks: []string{"b"}, Epoch: 3})
	if !fo.Rescheduled.IsZero() || !fo.Attached.Equal(at(22)) || !fo.Resumed.Equal(at(24)) || fo.Seconds() != 4 {
		t.Errorf("takeover: rescheduled %v, attached %v, resumed %v (%.1f s); want no new task, +22s, +24s (4 s)",
			fo.Rescheduled, fo.Attached.Sub(t0), fo.Resumed.Sub(t0), fo.Seconds())
	}
	if note := targetNote(fo); !strings.Contains(note, "same containers carried on") {
		t.Errorf("takeover note %q", note)
	}

	// The broker's node killed at 30 s: the broker runs again at 33 s and
	// the ingester commits what it had read before the failure, but the
	// producer only gets through again at 40 s (as in a demo run, where
	// its writer kept the dead broker's connections): that is when
	// readings flow again.
	stall := func(s float64, produced, committed int64, task string) Sample {
		smp := mk(s, committed, "node3", task, "node3", 1, 1)
		if smp.Kafka != nil {
			smp.Kafka.Produced = produced
		}
		smp.Services[BrokerService] = smp.Services[CQLService]
		return smp
	}
	broker := []Sample{stall(28, 2800, 2790, "k1"), stall(29, 2900, 2890, "k1"), stall(30, 0, -1, ""), stall(33, 3000, 2990, "k2"), stall(34, 3000, 3000, "k2"),
		stall(39, 3000, 3000, "k2"), stall(40, 3700, 3650, "k2")}
	fo = Analyze(broker, Failure{Kind: FailKillNode, At: at(30), Service: BrokerService, Volume: "sensors_kafka-data", Tasks: []string{"k1"}, Epoch: 1})
	if !fo.Rescheduled.Equal(at(33)) || !fo.Resumed.Equal(at(40)) {
		t.Errorf("broker: rescheduled %v, resumed %v; want +33s, +40s (the commits at 33-34 s were of readings produced before)", fo.Rescheduled.Sub(t0), fo.Resumed.Sub(t0))
	}
}

func TestTimelineAndScaling(t *testing.T) {
	samples := failoverSamples()
	f := Failure{Kind: FailKillNode, At: at(10), Node: "node2", Service: CQLService, Volume: "sensors_cql-data", Tasks: []string{"a"}, Epoch: 2}
	own := []Event{{Time: at(10), What: "docker kill node2"}}
	ev := Timeline(own, samples, []Failover{Analyze(samples, f)})
	var got []string
	for _, e := range ev {
		got = append(got, e.Time.Sub(t0).String()+" "+e.What)
	}
	want := []string{"10s docker kill node2", "13s volume sensors_cql-data attached", "14s ingesters scaled",
		"15s Swarm rescheduled cql", "17s first reading stored", "17s ingesters scaled"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("timeline\n got %q\nwant %q", got, want)
	}
	if sc := Scaling(samples); len(sc) != 2 || sc[0].Detail != "1 -> 2 replicas" || sc[1].Detail != "2 -> 1 replicas" {
		t.Errorf("scaling %+v", sc)
	}
}

func TestLocality(t *testing.T) {
	samples := failoverSamples()
	for i := range samples {
		v := samples[i].Volumes["sensors_cql-data"]
		// Local on node2 before the failure, remote on node4 from 13 s
		// until a replica there is in sync at 17 s.
		v.Local = v.Attached == "node2" || samples[i].Time.Compare(at(17)) >= 0
		samples[i].Volumes["sensors_cql-data"] = v
	}
	ev := Locality(samples)
	if len(ev) != 1 || !ev[0].Time.Equal(at(17)) || !strings.Contains(ev[0].Detail, "node4") {
		t.Fatalf("locality events %+v, want one at +17s on node4", ev)
	}
	for i := range samples {
		v := samples[i].Volumes["sensors_cql-data"]
		v.Local = true
		samples[i].Volumes["sensors_cql-data"] = v
	}
	if ev := Locality(samples); len(ev) != 0 {
		t.Errorf("always local: events %+v, want none", ev)
	}
}

func TestRewinds(t *testing.T) {
	samples := failoverSamples()
	if ev := Rewinds(samples); len(ev) != 0 {
		t.Fatalf("end offsets only grow: %+v", ev)
	}
	samples[8].Kafka.End = 1300 // 1500 at 15 s, then 1300 at 16 s
	ev := Rewinds(samples)
	if len(ev) != 1 || !ev[0].Time.Equal(at(16)) || !strings.Contains(ev[0].Detail, "by 200") {
		t.Fatalf("rewinds %+v, want one at +16s by 200", ev)
	}
}

func TestSteadyRate(t *testing.T) {
	samples := failoverSamples()
	f := Failover{Failure: Failure{At: at(10)}}
	// 700 at 8 s to 900 at 10 s.
	if r := SteadyRate(samples, []Failover{f}, nil); r != 100 {
		t.Errorf("steady rate %v, want 100/s", r)
	}
	// A burst at 9 s ends the steady span sooner: 700 to 800.
	if r := SteadyRate(samples, []Failover{f}, []Event{{Time: at(9), What: burstEvent}}); r != 100 {
		t.Errorf("steady rate before a burst %v, want 100/s", r)
	}
	// Nothing broken: the whole run, 700 at 8 s to 1500 at 18 s.
	if r := SteadyRate(samples, nil, nil); r != 80 {
		t.Errorf("steady rate of the whole run %v, want 80/s", r)
	}
	if r := SteadyRate(samples[:1], nil, nil); r != 0 {
		t.Errorf("one sample: %v, want 0", r)
	}
}

func TestRatesAndLags(t *testing.T) {
	produced, stored := Rates(failoverSamples(), t0)
	// 10 samples reached the broker: 9 rates. From 13 s to 15 s (the
	// broker unreachable at 14 s) the rate spans 2 s.
	if len(stored) != 9 || len(produced) != 9 {
		t.Fatalf("%d stored and %d produced rates, want 9", len(stored), len(produced))
	}
	if stored[0].V != 100 || stored[0].T != 9*time.Second {
		t.Errorf("first stored rate %+v, want 100/s at 9s", stored[0])
	}
	if produced[5].T != 15*time.Second || produced[5].V != 100 {
		t.Errorf("rate across the gap %+v, want 100/s at 15s", produced[5])
	}
	if stored[7].V != 450 {
		t.Errorf("stored rate at 17s %+v, want 450/s", stored[7])
	}
	lags := Lags(failoverSamples(), t0)
	if len(lags) != 10 || lags[0].V != 100 || lags[9].V != 300 {
		t.Errorf("lags %+v", lags)
	}
}

// TestWriteReport renders a report from made-up samples: the PNGs decode,
// the page carries the verdict and the failover row, and a run that lost
// readings says so.
func TestWriteReport(t *testing.T) {
	samples := failoverSamples()
	f := Failure{Kind: FailKillNode, At: at(10), Node: "node2", Service: CQLService, Volume: "sensors_cql-data", Tasks: []string{"a"}, Epoch: 2}
	daemon := Failover{Failure: Failure{Kind: FailDaemon, At: at(16), Node: "node4", Service: CQLService}, Rescheduled: at(20), Resumed: at(30)}
	res := &Result{Start: at(8), End: at(18), Nodes: []Node{{Index: 1, Name: "n1", ID: "node1", Manager: true}}, Samples: samples,
		Failovers: []Failover{Analyze(samples, f), daemon},
		Verify:    &sensors.VerifyReport{OK: true, Total: sensors.SensorResult{Produced: 1500, Stored: 1500}}}
	res.Timeline = Timeline(nil, samples, res.Failovers)
	dir := t.TempDir()
	if err := WriteReport(dir, res); err != nil {
		t.Fatal(err)
	}
	for _, c := range charts {
		b, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(bytes.NewReader(b)); err != nil {
			t.Errorf("%s: %v", c.file, err)
		}
	}
	html, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ZERO READINGS LOST: 1500 readings produced, 1500 stored, 0 missing", "docker kill node2",
		"<td>7.0</td>", "data:image/png;base64,"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("index.html lacks %q", want)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| Steady state, readings stored/s | 100 |", "docker kill node2 (cql): new task running / volume attached / storing again, s | 5.0 / 3.0 / 7.0 | storing within 10 s meets |",
		"| Autoscaler, +6 s | 1 -> 2 replicas |", "zero lost meets",
		"| kill -9 serving ballast daemon on node4 (cql): new task running / volume attached / storing again, s | 4.0 / - / 14.0 | — |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
	var sum bytes.Buffer
	Summary(&sum, res, dir)
	if !strings.Contains(sum.String(), "ZERO READINGS LOST") || !strings.Contains(sum.String(), "cql storing again after 7.0 s: target <= 10 s meets") ||
		!strings.Contains(sum.String(), "cql storing again after 14.0 s (the containers on that node saw I/O errors and were replaced)") {
		t.Errorf("summary:\n%s", sum.String())
	}

	res.Verify = &sensors.VerifyReport{OK: false, Total: sensors.SensorResult{Produced: 1500, Stored: 1499, Missing: 1}}
	if res.OK() || !strings.HasPrefix(Verdict(res), "READINGS LOST") {
		t.Errorf("a missing reading: OK %v, verdict %q", res.OK(), Verdict(res))
	}
	res.Verify.OK, res.BrokerLost, res.Problems = true, true, []string{"acknowledged readings lost by the broker"}
	if res.OK() || !strings.HasPrefix(Verdict(res), "READINGS LOST: the broker lost") {
		t.Errorf("a rewound topic: OK %v, verdict %q", res.OK(), Verdict(res))
	}
	res.BrokerLost, res.Problems = false, []string{"step kill-cql: not back"}
	if res.OK() || !strings.HasPrefix(Verdict(res), "NO READING LOST, but a step failed") {
		t.Errorf("a failed step: OK %v, verdict %q", res.OK(), Verdict(res))
	}
}

func TestScenarioConfig(t *testing.T) {
	c, err := ScenarioConfig{}.withDefaults()
	if err != nil || c.Stack != DefaultStack || len(c.Steps) != len(Steps) || c.Rate != 200 {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	if _, err := (ScenarioConfig{Steps: []string{"kill-cql", "kill-everything"}}).withDefaults(); err == nil || !strings.Contains(err.Error(), `"kill-everything"`) {
		t.Errorf("unknown step: %v", err)
	}
	if _, err := (ScenarioConfig{Rate: -1}).withDefaults(); err == nil {
		t.Error("negative rate accepted")
	}
}
