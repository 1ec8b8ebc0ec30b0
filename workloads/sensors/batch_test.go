package sensors

import (
	"fmt"
	"testing"
	"time"

	kafka "github.com/segmentio/kafka-go"
)

func st(sensor string, ms int64, temp float64) Stamped {
	return Stamped{Reading: Reading{SensorID: sensor, Temperature: temp, Time: time.UnixMilli(ms).UTC()}, Produced: time.UnixMilli(ms)}
}

const day = int64(24 * time.Hour / time.Millisecond)

func TestBatchesByPartition(t *testing.T) {
	base := int64(20000) * day // midnight UTC
	in := []Stamped{
		st("a", base+1, 1), st("b", base+1, 2), st("a", base+2, 3),
		st("a", base+day+5, 4), // a, next day: another partition
		st("b", base+2, 5), st("a", base+3, 6), st("a", base+4, 7),
	}
	got := Batches(in, 2)
	var desc []string
	for _, b := range got {
		s := fmt.Sprintf("%s@%d:", b.Partition.SensorID, b.Partition.Day.UnixMilli()/day-20000)
		for i, r := range b.Readings {
			if r.SensorID != b.Partition.SensorID || !r.Day().Equal(b.Partition.Day) {
				t.Fatalf("reading %+v in batch of %+v", r, b.Partition)
			}
			if !b.Produced[i].Equal(time.UnixMilli(r.Time.UnixMilli())) {
				t.Fatalf("produced time of %+v not carried", r)
			}
			s += fmt.Sprint(r.Temperature)
		}
		desc = append(desc, s)
	}
	want := []string{"a@0:13", "a@0:67", "b@0:25", "a@1:4"}
	if fmt.Sprint(desc) != fmt.Sprint(want) {
		t.Fatalf("batches %v, want %v", desc, want)
	}
	if n := len(Batches(in, 0)); n != 3 {
		t.Fatalf("unbounded: %d batches, want 3 (one per partition)", n)
	}
	if len(Batches(nil, 10)) != 0 {
		t.Fatal("batches from nothing")
	}
}

// A reading delivered twice in a chunk (a redelivery) is written once, the
// last copy.
func TestBatchesDropDuplicates(t *testing.T) {
	in := []Stamped{st("a", 1, 1), st("a", 2, 2), st("a", 1, 9)}
	got := Batches(in, 10)
	if len(got) != 1 || len(got[0].Readings) != 2 {
		t.Fatalf("got %+v", got)
	}
	for _, r := range got[0].Readings {
		if r.Time.UnixMilli() == 1 && r.Temperature != 9 {
			t.Fatalf("kept the first copy %+v, want the last", r)
		}
	}
}

func TestAlerts(t *testing.T) {
	in := []Stamped{st("a", 5, 31), st("b", 1, 10), st("a", 3, 40), st("a", 7, 29), st("c", 2, 35), st("c", 4, 36)}
	got := Alerts(in, 30)
	want := []string{"a@5=31", "c@4=36"}
	var have []string
	for _, r := range got {
		have = append(have, fmt.Sprintf("%s@%d=%v", r.SensorID, r.Time.UnixMilli(), r.Temperature))
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Fatalf("alerts %v, want %v (latest over the threshold per sensor)", have, want)
	}
}

func TestAlertBook(t *testing.T) {
	b := alertBook{last: map[string]int64{}}
	r := func(ms int64) Reading { return Reading{SensorID: "a", Time: time.UnixMilli(ms)} }
	if b.known("a") || !b.newer(r(5)) {
		t.Fatal("empty book")
	}
	b.set(Reading{SensorID: "a"}) // read from the store: no alert yet
	if !b.known("a") || !b.newer(r(1)) {
		t.Fatal("no alert yet: every alert is newer")
	}
	b.set(r(10))
	if b.newer(r(9)) || b.newer(r(10)) || !b.newer(r(11)) {
		t.Fatal("an older alert would overwrite a newer one")
	}
	b.set(r(3))
	if b.newer(r(9)) {
		t.Fatal("set of an older alert moved the book back")
	}
}

func TestCommitPoints(t *testing.T) {
	m := func(topic string, p int, off int64) kafka.Message {
		return kafka.Message{Topic: topic, Partition: p, Offset: off}
	}
	got := CommitPoints([]kafka.Message{m("t", 1, 5), m("t", 0, 9), m("t", 1, 7), m("t", 1, 6), m("t", 0, 3), m("u", 0, 1)})
	want := "[t/0@9 t/1@7 u/0@1]"
	var have []string
	for _, c := range got {
		have = append(have, fmt.Sprintf("%s/%d@%d", c.Topic, c.Partition, c.Offset))
	}
	if fmt.Sprint(have) != want {
		t.Fatalf("commit points %v, want %s", have, want)
	}
	if len(CommitPoints(nil)) != 0 {
		t.Fatal("commit points from nothing")
	}
}

func TestLagTracker(t *testing.T) {
	lt := NewLagTracker("g")
	a, b := TopicPartition{"t", 0}, TopicPartition{"t", 1}
	lt.Fetched(a, 10, 100)
	lt.Fetched(b, 4, 0) // a watermark not known yet: at least the offset after the message
	lt.Committed(a, 11)
	now := time.Unix(5, 0)
	got := lt.Report(now)
	if len(got) != 2 {
		t.Fatalf("%d partitions", len(got))
	}
	if got[0].Partition != 0 || got[0].Lag != 89 || got[0].Committed != 11 || got[0].HighWaterMark != 100 {
		t.Errorf("partition 0: %+v, want lag 89", got[0])
	}
	if got[1].Lag != 5 || got[1].Committed != -1 {
		t.Errorf("partition 1 (nothing committed): %+v, want lag 5", got[1])
	}
	if Total(got) != 94 {
		t.Errorf("total %d", Total(got))
	}
	lt.Committed(a, 100)
	if l := lt.Report(now)[0].Lag; l != 0 {
		t.Errorf("caught up: lag %d", l)
	}
	if got[0].Key() != "t/0" || len(got[0].Encode()) == 0 {
		t.Errorf("key %q", got[0].Key())
	}
}
