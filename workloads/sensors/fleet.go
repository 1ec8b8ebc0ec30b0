package sensors

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Fleet is a set of simulated sensors. Each one's temperature walks at
// random around a base of its own; readings are handed out one sensor at a
// time, in turn. A sensor never takes two readings in the same millisecond
// nor a reading later than the clock says (its times strictly increase and
// never run ahead), so a reading's sensor and millisecond identify it, also
// across producer runs that start after the last one stopped. That caps a
// sensor at 1000 readings/s: a fleet of n sensors at 1000 n.
//
// A Fleet is deterministic: the same seed and the same sequence of Emit
// times give the same readings. It is not safe for concurrent use.
type Fleet struct {
	sensors []sensorState
	rng     *rand.Rand
	next    int // the sensor whose turn it is
}

type sensorState struct {
	id   string
	base float64 // °C the walk is pulled back to
	temp float64
	last int64 // millisecond of the last reading, -inf at first
}

// NewFleet returns n sensors named prefix-0001 .. prefix-n.
func NewFleet(n int, prefix string, seed uint64) (*Fleet, error) {
	if n <= 0 {
		return nil, fmt.Errorf("sensors: %d sensors, want at least 1", n)
	}
	if prefix == "" {
		prefix = "sensor"
	}
	width := len(fmt.Sprint(n))
	if width < 4 {
		width = 4
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	f := &Fleet{rng: rng, sensors: make([]sensorState, n)}
	for i := range f.sensors {
		id := fmt.Sprintf("%s-%0*d", prefix, width, i+1)
		if len(id) > MaxSensorIDLen {
			return nil, fmt.Errorf("sensors: id %q is longer than %d bytes", id, MaxSensorIDLen)
		}
		base := 18 + rng.Float64()*8 // 18..26 °C
		f.sensors[i] = sensorState{id: id, base: base, temp: base, last: math.MinInt64}
	}
	return f, nil
}

// Size is the number of sensors.
func (f *Fleet) Size() int { return len(f.sensors) }

// Emit appends up to max readings taken at or before now to out and
// returns it. It returns fewer when every sensor already has a reading in
// now's millisecond.
func (f *Fleet) Emit(now time.Time, max int, out []Reading) []Reading {
	ms := now.UnixMilli()
	idle := 0 // sensors in a row that could not take a reading
	for n := 0; n < max && idle < len(f.sensors); {
		s := &f.sensors[f.next]
		f.next = (f.next + 1) % len(f.sensors)
		if s.last >= ms {
			idle++
			continue
		}
		idle = 0
		s.last = ms
		s.temp = f.walk(s)
		out = append(out, Reading{SensorID: s.id, Temperature: s.temp, Time: time.UnixMilli(ms).UTC()})
		n++
	}
	return out
}

// walk moves s's temperature one step: a small random step, pulled back to
// its base, now and then a spike (something to alert on), kept to 0.01 °C.
func (f *Fleet) walk(s *sensorState) float64 {
	t := s.temp + f.rng.NormFloat64()*0.2 + (s.base-s.temp)*0.05
	if f.rng.IntN(2000) == 0 {
		t += 10 + f.rng.Float64()*10
	}
	return math.Round(t*100) / 100
}
