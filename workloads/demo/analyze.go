package demo

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/ballast-io/ballast/workloads/sensors"
)

// Failure is one thing the scenario broke: a node killed (docker kill) or
// a node's Ballast daemon killed, with what ran there at that moment.
type Failure struct {
	Kind        string    `json:"kind"` // FailKillNode or FailDaemon
	At          time.Time `json:"at"`
	Node        string    `json:"node"`         // the Swarm node (container) hit
	BallastNode string    `json:"ballast_node"` // its Ballast node ID
	Service     string    `json:"service"`      // the stateful service that ran there
	Volume      string    `json:"volume"`       // that service's Ballast volume
	Tasks       []string  `json:"tasks"`        // the service's running tasks then
	Epoch       uint64    `json:"epoch"`        // the volume's attachment epoch then
}

// Kinds of Failure.
const (
	FailKillNode = "kill-node"
	FailDaemon   = "kill-daemon"
)

// Failover is when the pipeline came back from a Failure, as the samples
// show it; a zero time was not seen.
type Failover struct {
	Failure
	// Rescheduled: the service runs again, in a task that did not run at
	// the failure (on another node, unless only the daemon died).
	Rescheduled time.Time `json:"rescheduled"`
	RunsOn      string    `json:"runs_on"`
	// Attached: the volume is attached again at a newer epoch (the old
	// attachment fenced), on AttachedOn.
	Attached   time.Time `json:"attached"`
	AttachedOn string    `json:"attached_on"`
	// Resumed: the first sample, once rescheduled (for a daemon's death:
	// once its volume is attached again), whose committed readings
	// (stored, then committed by the ingester) went up, past the readings
	// produced up to the failure (the last count before it, carried on at
	// the rate before it): readings produced after the failure are being
	// stored, not just what was in flight at it.
	Resumed time.Time `json:"resumed"`
}

// Recovered reports whether the pipeline stored readings again.
func (f Failover) Recovered() bool { return !f.Resumed.IsZero() }

// Seconds is the failover time: from the failure to the first reading
// stored after it (-1 if never).
func (f Failover) Seconds() float64 {
	if !f.Recovered() {
		return -1
	}
	return f.Resumed.Sub(f.At).Seconds()
}

// Analyze finds, in samples (in time order), how the pipeline came back
// from f.
func Analyze(samples []Sample, f Failure) Failover {
	fo := Failover{Failure: f}
	var before []*Sample // the last two samples before f that reached the broker
	var prev *Sample     // the last sample that reached the broker
	for i := range samples {
		s := &samples[i]
		if s.Time.Before(f.At) {
			if s.Kafka != nil {
				before = append(before[max(len(before)-1, 0):], s)
				prev = s
			}
			continue
		}
		if svc, ok := s.Services[f.Service]; ok && fo.Rescheduled.IsZero() && svc.Running() > 0 && !overlaps(svc.Tasks, f.Tasks) {
			fo.Rescheduled, fo.RunsOn = s.Time, svc.Nodes[0]
		}
		if v, ok := s.Volumes[f.Volume]; ok && fo.Attached.IsZero() && v.Attached != "" && v.Epoch > f.Epoch {
			fo.Attached, fo.AttachedOn = s.Time, v.Attached
		}
		if s.Kafka == nil {
			continue
		}
		// A node's death: the service runs again elsewhere. A daemon's
		// death: the restarted daemon takes the volume over under the
		// same containers (no new task), or they are replaced.
		back := !fo.Rescheduled.IsZero() || (f.Kind == FailDaemon && !fo.Attached.IsZero())
		if back && fo.Resumed.IsZero() && prev != nil && s.Kafka.Committed > prev.Kafka.Committed && s.Kafka.Committed > producedAt(before, f.At) {
			fo.Resumed = s.Time
		}
		prev = s
	}
	return fo
}

// producedAt estimates the readings produced up to t from the last samples
// before it (at most two, oldest first): the last count, carried on at
// the rate between the two.
func producedAt(before []*Sample, t time.Time) int64 {
	switch len(before) {
	case 0:
		return 0
	case 1:
		return before[0].Kafka.Produced
	}
	a, b := before[0], before[1]
	n := b.Kafka.Produced
	if dt := b.Time.Sub(a.Time).Seconds(); dt > 0 && b.Kafka.Produced > a.Kafka.Produced {
		rate := float64(b.Kafka.Produced-a.Kafka.Produced) / dt
		n += int64(math.Ceil(rate * t.Sub(b.Time).Seconds()))
	}
	return n
}

func overlaps(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// Rewinds lists each time the topic's end offsets went down between two
// samples: the broker came back without records it had acknowledged (a
// producer was told they were stored). verify cannot see those, since it
// checks the topic as it is against the store.
func Rewinds(samples []Sample) []Event {
	var ev []Event
	var prev *sensors.Progress
	for _, s := range samples {
		if s.Kafka == nil {
			continue
		}
		if prev != nil && s.Kafka.End < prev.End {
			ev = append(ev, Event{s.Time, "acknowledged readings lost by the broker",
				fmt.Sprintf("the topic's end offsets went down by %d", prev.End-s.Kafka.End)})
		}
		prev = s.Kafka
	}
	return ev
}

// Event is one line of the report's timeline.
type Event struct {
	Time   time.Time `json:"time"`
	What   string    `json:"what"`
	Detail string    `json:"detail,omitempty"`
}

// Timeline merges the runner's own events with what the samples show
// about each failure and each change of the ingesters' wanted replicas,
// in time order.
func Timeline(own []Event, samples []Sample, fos []Failover) []Event {
	ev := slices.Clone(own)
	for _, fo := range fos {
		if !fo.Rescheduled.IsZero() {
			ev = append(ev, Event{fo.Rescheduled, "Swarm rescheduled " + fo.Service, fmt.Sprintf("running on %s, %.1f s after the failure", fo.RunsOn, fo.Rescheduled.Sub(fo.At).Seconds())})
		}
		if !fo.Attached.IsZero() {
			ev = append(ev, Event{fo.Attached, "volume " + fo.Volume + " attached", fmt.Sprintf("on %s (old attachment fenced), %.1f s after the failure", fo.AttachedOn, fo.Attached.Sub(fo.At).Seconds())})
		}
		if fo.Recovered() {
			ev = append(ev, Event{fo.Resumed, "first reading stored", fmt.Sprintf("failover of %s took %.1f s", fo.Service, fo.Seconds())})
		}
	}
	ev = append(ev, Scaling(samples)...)
	ev = append(ev, Locality(samples)...)
	ev = append(ev, Rewinds(samples)...)
	slices.SortStableFunc(ev, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return ev
}

// Scaling lists each change of the ingesters' wanted replicas (the
// autoscaler's decisions) in the samples.
func Scaling(samples []Sample) []Event {
	var ev []Event
	last := -1
	for _, s := range samples {
		svc, ok := s.Services[IngesterService]
		if !ok {
			continue
		}
		if last >= 0 && svc.Want != last {
			ev = append(ev, Event{s.Time, "ingesters scaled", fmt.Sprintf("%d -> %d replicas", last, svc.Want)})
		}
		last = svc.Want
	}
	return ev
}

// Locality lists each time a volume attached on a node with no in-sync
// replica of it got one there (Ballast's data locality: a replica built on
// the new node, a remote one retired).
func Locality(samples []Sample) []Event {
	var ev []Event
	remote := map[string]bool{} // volume attached with no local replica
	for _, s := range samples {
		for name, v := range s.Volumes {
			switch {
			case v.Attached == "":
			case !v.Local:
				remote[name] = true
			case remote[name]:
				ev = append(ev, Event{s.Time, "volume " + name + " local again", "an in-sync replica built on " + v.Attached + ", where it is attached: reads need no network"})
				delete(remote, name)
			}
		}
	}
	slices.SortStableFunc(ev, func(a, b Event) int { return a.Time.Compare(b.Time) })
	return ev
}

// SteadyRate is the readings stored per second from the first sample
// with readings stored to the first failure (or burst), or over the whole
// run if nothing was broken; 0 if that span has no two samples.
func SteadyRate(samples []Sample, fos []Failover, timeline []Event) float64 {
	end := time.Time{}
	for _, fo := range fos {
		if end.IsZero() || fo.At.Before(end) {
			end = fo.At
		}
	}
	for _, e := range timeline {
		if e.What == burstEvent && (end.IsZero() || e.Time.Before(end)) {
			end = e.Time
		}
	}
	var first, last *Sample
	for i := range samples {
		s := &samples[i]
		if s.Kafka == nil || s.Kafka.Committed == 0 || !end.IsZero() && s.Time.After(end) {
			continue
		}
		if first == nil {
			first = s
		}
		last = s
	}
	if first == nil || last == first {
		return 0
	}
	return float64(last.Kafka.Committed-first.Kafka.Committed) / last.Time.Sub(first.Time).Seconds()
}

// Point is one value of a series over time.
type Point struct {
	T time.Duration // since the start
	V float64
}

// Rates returns readings produced and stored (committed) per second
// between consecutive samples that reached the broker.
func Rates(samples []Sample, start time.Time) (produced, stored []Point) {
	var prev *Sample
	for i := range samples {
		s := &samples[i]
		if s.Kafka == nil {
			continue
		}
		if prev != nil {
			dt := s.Time.Sub(prev.Time).Seconds()
			if dt > 0 {
				t := s.Time.Sub(start)
				produced = append(produced, Point{t, max(float64(s.Kafka.Produced-prev.Kafka.Produced), 0) / dt})
				stored = append(stored, Point{t, max(float64(s.Kafka.Committed-prev.Kafka.Committed), 0) / dt})
			}
		}
		prev = s
	}
	return produced, stored
}

// Lags returns the consumer lag (readings produced, not yet stored) of
// each sample that reached the broker.
func Lags(samples []Sample, start time.Time) []Point {
	var out []Point
	for _, s := range samples {
		if s.Kafka != nil {
			out = append(out, Point{s.Time.Sub(start), float64(s.Kafka.Lag())})
		}
	}
	return out
}

// Replicas returns the ingesters' wanted and running replicas per sample.
func Replicas(samples []Sample, start time.Time) (want, running []Point) {
	for _, s := range samples {
		if svc, ok := s.Services[IngesterService]; ok {
			t := s.Time.Sub(start)
			want = append(want, Point{t, float64(svc.Want)})
			running = append(running, Point{t, float64(svc.Running())})
		}
	}
	return want, running
}
