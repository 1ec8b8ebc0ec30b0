package sensors

import (
	"testing"
	"time"
)

func TestCompare(t *testing.T) {
	p := produced{}
	at := func(s string, ms int64, temp float64) Reading {
		return Reading{SensorID: s, Temperature: temp, Time: time.UnixMilli(ms).UTC()}
	}
	d0 := int64(20000) * day
	for _, r := range []Reading{
		at("a", d0+1, 1), at("a", d0+2, 2), at("a", d0+2, 2), // a duplicate message (producer retry)
		at("a", d0+day+3, 3), // next day
		at("b", d0+1, 5), at("b", d0+2, 6), at("b", d0+3, 7),
		at("c", d0+9, 1), at("c", d0+9, 2), // two readings in one millisecond
	} {
		p.add(r)
	}
	pk := func(s string, ms int64) PartitionKey {
		return PartitionKey{SensorID: s, Day: Reading{Time: time.UnixMilli(ms)}.Day()}
	}
	stored := map[PartitionKey]map[int64]float64{
		pk("a", d0):       {d0 + 1: 1, d0 + 2: 2, d0 + 50: 8}, // one extra row
		pk("a", d0+day):   {d0 + day + 3: 3},
		pk("b", d0):       {d0 + 1: 5, d0 + 3: 9}, // 2 missing, 3 with another temperature
		pk("c", d0):       {d0 + 9: 2},
		pk("zzz", d0):     {1: 1}, // not produced: not looked at
		pk("a", d0+2*day): {d0 + 2*day: 1},
	}
	sensors, total := Compare(p, stored)
	if len(sensors) != 3 {
		t.Fatalf("%d sensors", len(sensors))
	}
	a, b, c := sensors[0], sensors[1], sensors[2]
	if a.SensorID != "a" || a.Messages != 4 || a.Produced != 3 || a.Stored != 3 || a.Lost() != 0 || a.Extra != 1 {
		t.Errorf("a: %+v", a)
	}
	if b.Produced != 3 || b.Stored != 1 || b.Missing != 1 || b.Mismatched != 1 || b.FirstMissing == "" {
		t.Errorf("b: %+v", b)
	}
	if c.Produced != 1 || c.Overwritten != 1 || c.Stored != 1 || c.Lost() != 1 {
		t.Errorf("c: %+v", c)
	}
	if total.Produced != 7 || total.Missing != 1 || total.Mismatched != 1 || total.Overwritten != 1 || total.Lost() != 3 {
		t.Errorf("total: %+v", total)
	}
	if got := missingDays(p, stored); len(got) != 1 || got[0].SensorID != "b" {
		t.Errorf("missing days %+v, want b's one", got)
	}
	if n := len(p.partitions()); n != 4 {
		t.Errorf("%d partitions, want 4", n)
	}
}

func TestLastAlerts(t *testing.T) {
	p := produced{}
	for _, r := range []Reading{
		{SensorID: "a", Temperature: 31, Time: time.UnixMilli(5)},
		{SensorID: "a", Temperature: 35, Time: time.UnixMilli(3)},
		{SensorID: "a", Temperature: 20, Time: time.UnixMilli(9)},
		{SensorID: "b", Temperature: 20, Time: time.UnixMilli(9)},
	} {
		p.add(r)
	}
	got := p.lastAlerts(30)
	if len(got) != 1 || got["a"].Time.UnixMilli() != 5 || got["a"].Temperature != 31 {
		t.Fatalf("last alerts %+v, want a's at 5 ms", got)
	}
	want := got["a"]
	at := func(ms int64, temp float64) Reading {
		return Reading{SensorID: "a", Temperature: temp, Time: time.UnixMilli(ms)}
	}
	for _, c := range []struct {
		got Reading
		ok  bool
		res bool
	}{
		{Reading{}, false, false},
		{at(5, 31), true, true},
		{at(5, 32), true, false},
		{at(3, 35), true, false}, // an older alert left in place
		{at(7, 40), true, true},  // a newer one from elsewhere
	} {
		if alertOK(want, c.got, c.ok) != c.res {
			t.Errorf("alertOK(%+v, %v) = %v", c.got, c.ok, !c.res)
		}
	}
}
