package sensors

import (
	"testing"
	"time"
)

func TestFleetDeterministic(t *testing.T) {
	a, _ := NewFleet(7, "", 42)
	b, _ := NewFleet(7, "", 42)
	c, _ := NewFleet(7, "", 43)
	now := time.Date(2026, 9, 18, 10, 0, 0, 0, time.UTC)
	var ra, rb, rc []Reading
	for i := range 50 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		ra = a.Emit(at, 5, ra)
		rb = b.Emit(at, 5, rb)
		rc = c.Emit(at, 5, rc)
	}
	if len(ra) != 250 {
		t.Fatalf("%d readings, want 250", len(ra))
	}
	same := true
	for i := range ra {
		if ra[i] != rb[i] {
			t.Fatalf("reading %d differs with the same seed: %+v vs %+v", i, ra[i], rb[i])
		}
		same = same && ra[i] == rc[i]
	}
	if same {
		t.Fatal("another seed gave the same readings")
	}
	if ra[0].SensorID != "sensor-0001" || ra[6].SensorID != "sensor-0007" {
		t.Fatalf("ids %s .. %s", ra[0].SensorID, ra[6].SensorID)
	}
}

// TestFleetOneReadingPerMillisecond: whatever the clock does, a sensor's
// readings have strictly increasing milliseconds, none later than the
// clock, so the store's (sensor, millisecond) key never collides.
func TestFleetOneReadingPerMillisecond(t *testing.T) {
	f, err := NewFleet(3, "s", 1)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 9, 18, 23, 59, 59, 995e6, time.UTC)
	last := map[string]int64{}
	total := 0
	days := map[string]bool{}
	// The same millisecond asked for many times, then the clock moves,
	// across midnight.
	for step := range 40 {
		now := start.Add(time.Duration(step/4) * time.Millisecond).Add(time.Duration(step%4) * time.Microsecond)
		out := f.Emit(now, 100, nil)
		if step%4 != 0 && len(out) != 0 {
			t.Fatalf("step %d: %d more readings in a millisecond every sensor already used", step, len(out))
		}
		for _, r := range out {
			ms := r.Time.UnixMilli()
			if ms > now.UnixMilli() {
				t.Fatalf("reading at %v is later than the clock %v", r.Time, now)
			}
			if prev, ok := last[r.SensorID]; ok && ms <= prev {
				t.Fatalf("%s: reading at %d ms after one at %d ms", r.SensorID, ms, prev)
			}
			if _, err := Encode(r); err != nil {
				t.Fatal(err)
			}
			last[r.SensorID] = ms
			days[r.Day().Format(time.DateOnly)] = true
			total++
		}
	}
	if total != 30 { // 10 milliseconds x 3 sensors
		t.Fatalf("%d readings, want 30", total)
	}
	if len(days) != 2 {
		t.Fatalf("readings on %d days, want 2 (across midnight)", len(days))
	}
}

func TestFleetTakesTurns(t *testing.T) {
	f, _ := NewFleet(4, "", 9)
	now := time.Unix(1e9, 0)
	out := f.Emit(now, 6, nil)
	out = f.Emit(now.Add(time.Millisecond), 6, out)
	count := map[string]int{}
	for _, r := range out {
		count[r.SensorID]++
	}
	// 12 readings asked, 4 sensors: the first millisecond gives 4 (each
	// sensor once), the second 4 again.
	if len(out) != 8 {
		t.Fatalf("%d readings, want 8", len(out))
	}
	for id, n := range count {
		if n != 2 {
			t.Errorf("%s: %d readings, want 2", id, n)
		}
	}
}

func TestFleetTemperatures(t *testing.T) {
	f, _ := NewFleet(20, "", 5)
	now := time.Unix(1e9, 0)
	var out []Reading
	for i := range 5000 {
		out = f.Emit(now.Add(time.Duration(i)*time.Millisecond), 20, out[:0])
		for _, r := range out {
			if r.Temperature < 0 || r.Temperature > 80 {
				t.Fatalf("%s: %.2f °C is not a room's temperature", r.SensorID, r.Temperature)
			}
		}
	}
}

func TestNewFleetRejects(t *testing.T) {
	if _, err := NewFleet(0, "", 1); err == nil {
		t.Error("0 sensors: no error")
	}
	long := make([]byte, MaxSensorIDLen)
	for i := range long {
		long[i] = 'x'
	}
	if _, err := NewFleet(1, string(long), 1); err == nil {
		t.Error("ids longer than MaxSensorIDLen: no error")
	}
}

func TestPacer(t *testing.T) {
	start := time.Unix(100, 0)
	p := newPacer(1000, start)
	if n := p.allow(start, 50); n != 0 {
		t.Errorf("at start: %d allowed, want 0", n)
	}
	if n := p.allow(start.Add(10*time.Millisecond), 50); n != 10 {
		t.Errorf("after 10 ms at 1000/s: %d allowed, want 10", n)
	}
	p.took(10)
	if n := p.allow(start.Add(10*time.Millisecond), 50); n != 0 {
		t.Errorf("after taking them: %d allowed, want 0", n)
	}
	if w := p.wait(start.Add(10 * time.Millisecond)); w != time.Millisecond {
		t.Errorf("wait = %v, want 1ms", w)
	}
	if n := p.allow(start.Add(time.Second), 50); n != 50 {
		t.Errorf("capped at want: %d", n)
	}
	unlimited := newPacer(0, start)
	if n := unlimited.allow(start, 77); n != 77 {
		t.Errorf("no rate: %d allowed, want 77", n)
	}
}
