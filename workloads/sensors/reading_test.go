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

// FuzzDecode: Decode never panics, and what it accepts encodes and decodes
// back to the same reading.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"machineid":"sensor-0001","temperature":21.37,"eventdate":"2026-09-18T10:11:12.345Z"}`))
	f.Add([]byte(`{"machineid":"s","temperature":-5.5,"eventdate":"2026-09-18T12:11:12.5+02:00","x":null}`))
	f.Add([]byte(`{"machineid":"s","temperature":20,"eventdate":"2026-09-18T10:11:12.3456Z"}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
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
