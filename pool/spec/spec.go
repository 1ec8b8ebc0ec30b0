// Package spec parses and validates what users type: volume and snapshot
// names, sizes, and the volume specification built from them. The CLI, the
// Docker plugin and the CSI driver all go through it, so every front door
// applies the same rules and gives the same errors.
package spec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxNameLen is the longest volume or snapshot name.
const MaxNameLen = 64

// ErrInvalid marks every validation error, so callers can map it to an
// "invalid argument" answer.
var ErrInvalid = errors.New("invalid")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ValidateName checks a volume or snapshot name: 1 to 64 characters from
// [A-Za-z0-9_.-], not "." or "..", not containing "..". kind names the thing
// in the error ("volume name").
func ValidateName(kind, name string) error {
	switch {
	case name == "":
		return invalid("%s is empty", kind)
	case len(name) > MaxNameLen:
		return invalid("%s %.20q... is %d characters long, the limit is %d", kind, name, len(name), MaxNameLen)
	case strings.Contains(name, ".."):
		return invalid("%s %q contains \"..\"", kind, name)
	case name == ".":
		return invalid("%s %q is not allowed", kind, name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return invalid("%s %q has %q at position %d; use only letters, digits, '_', '.' and '-'", kind, name, c, i)
		}
	}
	return nil
}

var units = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
	"p": 1 << 50, "pb": 1 << 50, "pi": 1 << 50, "pib": 1 << 50,
}

// ParseSize parses a size such as "10G", "512MiB", "1.5T" or "4096" into
// bytes. Units are binary (K = 1024), case-insensitive. The result is
// positive; rounding to whole blocks is the caller's business.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, invalid("size is empty; give a size such as 10G")
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.' || t[i] == '-' || t[i] == '+') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := units[unit]
	if !ok {
		return 0, invalid("size %q has unknown unit %q; use K, M, G, T or P", s, t[i:])
	}
	if num == "" {
		return 0, invalid("size %q has no number", s)
	}
	if strings.ContainsAny(num, ".") {
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, invalid("size %q is not a number", s)
		}
		return checkSize(s, f*float64(mult))
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, invalid("size %q is too large", s)
		}
		return 0, invalid("size %q is not a number", s)
	}
	if n > 0 && n > math.MaxInt64/mult {
		return 0, invalid("size %q is too large", s)
	}
	return checkSize(s, float64(n*mult))
}

// MaxSize is the largest volume Ballast accepts: 1 PiB.
const MaxSize = int64(1) << 50

func checkSize(s string, b float64) (int64, error) {
	switch {
	case math.IsNaN(b) || b < 0:
		return 0, invalid("size %q is negative", s)
	case b == 0:
		return 0, invalid("size %q is zero", s)
	case b > float64(MaxSize):
		return 0, invalid("size %q is larger than the 1 PiB limit", s)
	case b < 1:
		return 0, invalid("size %q is less than one byte", s)
	}
	return int64(b), nil
}

// FormatSize prints bytes in the largest binary unit that keeps it exact
// to one decimal, e.g. 1073741824 -> "1GiB".
func FormatSize(b int64) string {
	for _, u := range []struct {
		s string
		n int64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b >= u.n {
			if b%u.n == 0 {
				return fmt.Sprintf("%d%s", b/u.n, u.s)
			}
			return fmt.Sprintf("%.1f%s", float64(b)/float64(u.n), u.s)
		}
	}
	return fmt.Sprintf("%dB", b)
}
