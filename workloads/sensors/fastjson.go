package sensors

import (
	"bytes"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// The hot path of the codec: readings as the producer writes them,
// {"machineid":"...","temperature":N,"eventdate":"..."} in that order with
// no spaces or escapes, are encoded and decoded by hand, about ten times
// faster than encoding/json. Anything else is left to encoding/json (see
// Decode), so the two agree on every input (FuzzDecode checks it).

// appendReading appends r's JSON to b. r must be valid (see validate), and
// its id must need no escaping (plainID).
func appendReading(b []byte, r Reading) []byte {
	b = append(b, `{"machineid":"`...)
	b = append(b, r.SensorID...)
	b = append(b, `","temperature":`...)
	b = strconv.AppendFloat(b, r.Temperature, 'f', -1, 64)
	b = append(b, `,"eventdate":"`...)
	b = appendLayout(b, r.Time)
	return append(b, `"}`...)
}

// appendLayout appends t in TimeLayout, in UTC, as t.UTC().AppendFormat
// would for years 0-9999, without the layout interpretation.
func appendLayout(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	two := func(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = append(two(b, int(mo)), '-')
	b = append(two(b, d), 'T')
	b = append(two(b, h), ':')
	b = append(two(b, mi), ':')
	b = append(two(b, s), '.')
	ms := t.Nanosecond() / int(time.Millisecond)
	return append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
}

// plainID reports whether s can go into a JSON string as it is (and comes
// back out the same): valid UTF-8, no quote, backslash, control character
// or character encoding/json would escape (<, >, &, U+2028, U+2029).
func plainID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

var (
	fastPrefix = []byte(`{"machineid":"`)
	fastTemp   = []byte(`","temperature":`)
	fastDate   = []byte(`,"eventdate":"`)
)

// decodeFast decodes the producer's exact form; ok is false for anything
// else, including every malformed input (encoding/json then decides and
// names the problem).
func decodeFast(b []byte) (r Reading, ok bool) {
	if !bytes.HasPrefix(b, fastPrefix) {
		return r, false
	}
	b = b[len(fastPrefix):]
	i := bytes.IndexByte(b, '"')
	if i <= 0 || i > MaxSensorIDLen {
		return r, false
	}
	id := b[:i]
	for _, c := range id {
		if c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			return r, false
		}
	}
	b = b[i:]
	if !bytes.HasPrefix(b, fastTemp) {
		return r, false
	}
	b = b[len(fastTemp):]
	n := jsonNumberLen(b)
	if n == 0 || n > 32 {
		return r, false
	}
	temp, err := strconv.ParseFloat(string(b[:n]), 64)
	if err != nil {
		return r, false
	}
	b = b[n:]
	if !bytes.HasPrefix(b, fastDate) {
		return r, false
	}
	b = b[len(fastDate):]
	i = bytes.IndexByte(b, '"')
	if i <= 0 || i > 64 {
		return r, false
	}
	for _, c := range b[:i] {
		if c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			return r, false
		}
	}
	t, ok := parseLayout(b[:i])
	if !ok {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, string(b[:i])); err != nil {
			return r, false
		}
	}
	b = b[i+1:]
	if len(b) == 0 || b[0] != '}' {
		return r, false
	}
	for _, c := range b[1:] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return r, false
		}
	}
	return Reading{SensorID: ids.intern(id), Temperature: temp, Time: t.UTC()}, true
}

// parseLayout parses TimeLayout in UTC ("2026-09-18T10:11:12.345Z")
// exactly; ok is false for anything else (time.Parse then decides).
func parseLayout(b []byte) (time.Time, bool) {
	if len(b) != 24 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[19] != '.' || b[23] != 'Z' {
		return time.Time{}, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	ms, ok7 := num(b[20:23])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, s, ms*int(time.Millisecond), time.UTC)
	if t.Day() != d { // 31 June and the like: time.Parse refuses them
		return time.Time{}, false
	}
	return t, true
}

// jsonNumberLen returns the length of the JSON number b starts with, 0 if
// it does not start with one.
func jsonNumberLen(b []byte) int {
	i := 0
	digits := func() int {
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return 0
		}
	}
	return i
}

// idTable interns sensor ids: a fleet has a few thousand, and a reading
// then costs no allocation for its id.
type idTable struct {
	mu sync.RWMutex
	m  map[string]string
}

const maxInterned = 1 << 16

var ids = idTable{m: map[string]string{}}

func (t *idTable) intern(b []byte) string {
	t.mu.RLock()
	s, ok := t.m[string(b)]
	t.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	t.mu.Lock()
	if len(t.m) < maxInterned {
		t.m[s] = s
	}
	t.mu.Unlock()
	return s
}
