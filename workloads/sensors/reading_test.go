package sensors

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	r := Reading{SensorID: "sensor-0042", Temperature: 21.37, Time: time.Date(2026, 9, 18, 10, 11, 12, 345e6, time.UTC)}
	b, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"machineid":"sensor-0042","temperature":21.37,"eventdate":"2026-09-18T10:11:12.345Z"}`
	if string(b) != want {
		t.Fatalf("Encode = %s, want %s", b, want)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got != r || !got.Time.Equal(r.Time) {
		t.Fatalf("Decode = %+v, want %+v", got, r)
	}
	// Whole seconds still carry three digits: the format is fixed.
	r.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b, _ = Encode(r)
	if !strings.Contains(string(b), `"2026-01-02T03:04:05.000Z"`) {
		t.Fatalf("Encode = %s", b)
	}
}

func TestDecodeAccepts(t *testing.T) {
	for _, in := range []string{
		`{"machineid":"s","temperature":20,"eventdate":"2026-09-18T10:11:12Z"}`,
		`{"machineid":"s","temperature":-5.5,"eventdate":"2026-09-18T12:11:12.5+02:00","extra":[1,2]}`,
		`{"machineid":"s","temperature":1e1,"eventdate":"2026-09-18T10:11:12.345000000Z"}`,
	} {
		r, err := Decode([]byte(in))
		if err != nil {
			t.Errorf("Decode(%s): %v", in, err)
			continue
		}
		if r.Time.Location() != time.UTC {
			t.Errorf("Decode(%s): time not in UTC: %v", in, r.Time)
		}
	}
	r, _ := Decode([]byte(`{"machineid":"s","temperature":20,"eventdate":"2026-09-18T01:00:00.000+02:00"}`))
	if want := time.Date(2026, 9, 17, 0, 0, 0, 0, time.UTC); !r.Day().Equal(want) {
		t.Errorf("Day of 01:00+02:00 = %v, want the UTC day %v", r.Day(), want)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, "unexpected end"},
		{`not json`, "invalid character"},
		{`[1,2]`, "cannot unmarshal"},
		{`{"temperature":20,"eventdate":"2026-09-18T10:11:12Z"}`, "no machineid"},
		{`{"machineid":null,"temperature":20,"eventdate":"2026-09-18T10:11:12Z"}`, "no machineid"},
		{`{"machineid":"s","eventdate":"2026-09-18T10:11:12Z"}`, "no temperature"},
		{`{"machineid":"s","temperature":20}`, "no eventdate"},
		{`{"machineid":"","temperature":20,"eventdate":"2026-09-18T10:11:12Z"}`, "empty machineid"},
		{`{"machineid":7,"temperature":20,"eventdate":"2026-09-18T10:11:12Z"}`, "cannot unmarshal number"},
		{`{"machineid":"s","temperature":"20","eventdate":"2026-09-18T10:11:12Z"}`, "cannot unmarshal string"},
		{`{"machineid":"s","temperature":-300,"eventdate":"2026-09-18T10:11:12Z"}`, "below absolute zero"},
		{`{"machineid":"s","temperature":20,"eventdate":"18/09/2026"}`, "not RFC 3339"},
		{`{"machineid":"s","temperature":20,"eventdate":1758190272000}`, "cannot unmarshal number"},
		{`{"machineid":"s","temperature":20,"eventdate":"2026-09-18T10:11:12.3456Z"}`, "finer than a millisecond"},
		{`{"machineid":"s","temperature":20,"eventdate":"0000-09-18T10:11:12Z"}`, "out of range"},
		{`{"machineid":"` + strings.Repeat("x", 300) + `","temperature":20,"eventdate":"2026-09-18T10:11:12Z"}`, "at most 256"},
	} {
		_, err := Decode([]byte(c.in))
		if err == nil {
			t.Errorf("Decode(%.60s): no error", c.in)
			continue
		}
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Decode(%.60s) = %v, want ErrMalformed naming %q", c.in, err, c.want)
		}
	}
}

// The fast path takes what the producer writes and leaves every variation
// to encoding/json, which gives the same reading.
func TestDecodeFastPath(t *testing.T) {
	at := time.Date(2026, 9, 18, 10, 11, 12, 345e6, time.UTC)
	for _, r := range []Reading{
		{SensorID: "sensor-0001", Temperature: 21.37, Time: at},
		{SensorID: "s", Temperature: -273.15, Time: at},
		{SensorID: "x", Temperature: 1e21, Time: at},
		{SensorID: "x", Temperature: 0, Time: at},
	} {
		b, err := Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		fast, ok := decodeFast(b)
		slow, err := decodeJSON(b)
		if !ok || err != nil || fast != slow {
			t.Errorf("%s: fast %+v (%v), encoding/json %+v (%v)", b, fast, ok, slow, err)
		}
	}
	for _, in := range []string{
		`{"temperature":1,"machineid":"s","eventdate":"2026-09-18T10:11:12Z"}`,
		`{"machineid":"s\u0041","temperature":1,"eventdate":"2026-09-18T10:11:12Z"}`,
		`{"machineid":"s","temperature":1,"eventdate":"2026-09-18T10:11:12Z","x":1}`,
		`{"machineid":"s","temperature":1.,"eventdate":"2026-09-18T10:11:12Z"}`,
		`{"machineid":"s","temperature":NaN,"eventdate":"2026-09-18T10:11:12Z"}`,
		`{"machineid":"s","temperature":0x1p3,"eventdate":"2026-09-18T10:11:12Z"}`,
		`{"machineid":"s","temperature":1,"eventdate":"2026-09-18T10:11:12Z"}x`,
		`{"machineid":"é","temperature":1,"eventdate":"2026-09-18T10:11:12Z"}`,
		` {"machineid":"s","temperature":1,"eventdate":"2026-09-18T10:11:12Z"}`,
	} {
		if r, ok := decodeFast([]byte(in)); ok {
			t.Errorf("fast path took %s as %+v", in, r)
		}
	}
	// Ids that need escaping go through encoding/json both ways.
	r := Reading{SensorID: `a"b<c`, Temperature: 1, Time: at}
	b, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil || back.SensorID != r.SensorID {
		t.Fatalf("%s -> %+v, %v", b, back, err)
	}
}

func TestAppendLayout(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, 9, 18, 10, 11, 12, 345e6, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC),
		time.Date(2026, 3, 1, 1, 2, 3, 7e6, time.FixedZone("x", 5*3600)),
		time.Unix(1758190272, 123456789),
	} {
		want := at.UTC().Format(TimeLayout)
		if got := string(appendLayout(nil, at)); got != want {
			t.Errorf("appendLayout(%v) = %s, want %s", at, got, want)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	v, _ := Encode(Reading{SensorID: "sensor-0001", Temperature: 21.37, Time: time.Date(2026, 9, 18, 10, 11, 12, 345e6, time.UTC)})
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeJSON(v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestEncodeRejects(t *testing.T) {
	at := time.Date(2026, 9, 18, 10, 11, 12, 0, time.UTC)
	for _, r := range []Reading{
		{SensorID: "", Temperature: 1, Time: at},
		{SensorID: "s", Temperature: 1, Time: at.Add(time.Microsecond)},
		{SensorID: "s", Temperature: -274, Time: at},
	} {
		if _, err := Encode(r); err == nil {
			t.Errorf("Encode(%+v): no error", r)
		}
	}
}

// FuzzDecode: Decode never panics, the hand-written fast path agrees with
// encoding/json on every input, and what Decode accepts encodes and
// decodes back to the same reading.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"machineid":"sensor-0001","temperature":21.37,"eventdate":"2026-09-18T10:11:12.345Z"}`))
	f.Add([]byte(`{"machineid":"s","temperature":-5.5,"eventdate":"2026-09-18T12:11:12.5+02:00","x":null}`))
	f.Add([]byte(`{"machineid":"s","temperature":20,"eventdate":"2026-09-18T10:11:12.3456Z"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"machineid":"a<b","temperature":-0.5e+3,"eventdate":"2026-09-18T10:11:12Z"} `))
	f.Add([]byte(`{"machineid":"s","temperature":01,"eventdate":"2026-09-18T10:11:12Z"}`))
	f.Add([]byte(`{"machineid":"s","temperature":1,"eventdate":"2026-02-29T10:11:12.000Z"}`))
	f.Add([]byte(`{"machineid":"s","temperature":1,"eventdate":"2024-02-29T23:59:60.999Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if fast, ok := decodeFast(b); ok {
			slow, err := decodeJSON(b)
			ferr := validate(fast)
			if (err == nil) != (ferr == nil) {
				t.Fatalf("%q: fast path validity %v, encoding/json %v", b, ferr, err)
			}
			if err == nil && (slow.SensorID != fast.SensorID || slow.Temperature != fast.Temperature || !slow.Time.Equal(fast.Time)) {
				t.Fatalf("%q: fast path %+v, encoding/json %+v", b, fast, slow)
			}
		}
		r, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		enc, err := Encode(r)
		if err != nil {
			t.Fatalf("accepted %q but cannot encode %+v: %v", b, r, err)
		}
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("cannot decode own encoding %s: %v", enc, err)
		}
		if back.SensorID != r.SensorID || back.Temperature != r.Temperature || !back.Time.Equal(r.Time) {
			t.Fatalf("round trip %+v -> %s -> %+v", r, enc, back)
		}
	})
}
