package sensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// The names the pipeline uses, as in the reference demo.
const (
	Topic    = "sensortemperature" // readings, keyed by sensor id
	Group    = "sensortempgroup"   // the ingester's consumer group
	LagTopic = "partitionlag"      // the ingester's lag reports
	// DeadLetterTopic receives the messages the ingester cannot decode,
	// unchanged, with headers saying where they came from and why.
	DeadLetterTopic = "sensortemperature.deadletter"
)

// TimeLayout is the wire format of eventdate: RFC 3339 in UTC with exactly
// three fractional digits. The store keeps event_time in milliseconds (the
// CQL timestamp type), so a reading is identified by its sensor and its
// millisecond; the fleet never gives one sensor two readings in the same
// millisecond, and Decode refuses a finer eventdate rather than truncating
// it (two readings a microsecond apart would silently become one).
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// MaxSensorIDLen bounds machineid (it is part of the store's partition key).
const MaxSensorIDLen = 256

// absoluteZero is the lowest temperature a reading can carry, in °C.
const absoluteZero = -273.15

// ErrMalformed is wrapped by every Decode error.
var ErrMalformed = errors.New("malformed reading")

// Reading is one temperature reading of one sensor.
type Reading struct {
	SensorID    string
	Temperature float64   // °C
	Time        time.Time // when it was taken, UTC, whole milliseconds
}

// Day is the reading's event_date: its UTC calendar day.
func (r Reading) Day() time.Time {
	y, m, d := r.Time.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Key identifies a reading in the store: its sensor and its millisecond.
type Key struct {
	SensorID string
	Millis   int64 // event time, milliseconds since the Unix epoch
}

// Key is r's identity in the store.
func (r Reading) Key() Key { return Key{SensorID: r.SensorID, Millis: r.Time.UnixMilli()} }

// wire is the JSON form, field names as in the reference demo.
type wire struct {
	MachineID   *string  `json:"machineid"`
	Temperature *float64 `json:"temperature"`
	EventDate   *string  `json:"eventdate"`
}

// Encode returns r as the JSON value of a Kafka message.
func Encode(r Reading) ([]byte, error) {
	if err := validate(r); err != nil {
		return nil, err
	}
	if plainID(r.SensorID) {
		return appendReading(make([]byte, 0, 80+len(r.SensorID)), r), nil
	}
	ts := r.Time.UTC().Format(TimeLayout)
	return json.Marshal(wire{MachineID: &r.SensorID, Temperature: &r.Temperature, EventDate: &ts})
}

// Decode parses a message value. Unknown fields are ignored; a missing or
// null field, a wrong type, an eventdate that is not RFC 3339 or is finer
// than a millisecond, or an impossible temperature is an error wrapping
// ErrMalformed that names the problem.
func Decode(b []byte) (Reading, error) {
	if r, ok := decodeFast(b); ok {
		if err := validate(r); err != nil {
			return Reading{}, err
		}
		return r, nil
	}
	return decodeJSON(b)
}

// decodeJSON is Decode with encoding/json, for any form of the value.
func decodeJSON(b []byte) (Reading, error) {
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Reading{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch {
	case w.MachineID == nil:
		return Reading{}, fmt.Errorf("%w: no machineid", ErrMalformed)
	case w.Temperature == nil:
		return Reading{}, fmt.Errorf("%w: no temperature", ErrMalformed)
	case w.EventDate == nil:
		return Reading{}, fmt.Errorf("%w: no eventdate", ErrMalformed)
	}
	t, err := time.Parse(time.RFC3339Nano, *w.EventDate)
	if err != nil {
		return Reading{}, fmt.Errorf("%w: eventdate %q is not RFC 3339: %v", ErrMalformed, *w.EventDate, err)
	}
	r := Reading{SensorID: *w.MachineID, Temperature: *w.Temperature, Time: t.UTC()}
	if err := validate(r); err != nil {
		return Reading{}, err
	}
	return r, nil
}

// validate checks what both directions require.
func validate(r Reading) error {
	switch {
	case r.SensorID == "":
		return fmt.Errorf("%w: empty machineid", ErrMalformed)
	case len(r.SensorID) > MaxSensorIDLen:
		return fmt.Errorf("%w: machineid is %d bytes, at most %d", ErrMalformed, len(r.SensorID), MaxSensorIDLen)
	case !utf8.ValidString(r.SensorID):
		return fmt.Errorf("%w: machineid is not UTF-8", ErrMalformed)
	case math.IsNaN(r.Temperature) || math.IsInf(r.Temperature, 0):
		return fmt.Errorf("%w: temperature %v", ErrMalformed, r.Temperature)
	case r.Temperature < absoluteZero:
		return fmt.Errorf("%w: temperature %v is below absolute zero", ErrMalformed, r.Temperature)
	case r.Time.Nanosecond()%int(time.Millisecond) != 0:
		return fmt.Errorf("%w: eventdate %s is finer than a millisecond (the store keeps milliseconds)",
			ErrMalformed, r.Time.UTC().Format(time.RFC3339Nano))
	case r.Time.Year() < 1 || r.Time.Year() > 9999:
		return fmt.Errorf("%w: eventdate year %d is out of range", ErrMalformed, r.Time.Year())
	}
	return nil
}
