package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ParseLabels parses "key=value,key=value" (e.g. "zone=a,rack=r1") into a
// map. Keys and values are 1-63 characters from [A-Za-z0-9_.-], keys may
// carry a "prefix/" as in Kubernetes; a key may appear once. "" gives nil.
func ParseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, invalid("label %q must be key=value", pair)
		}
		if err := labelPart("key", k, true); err != nil {
			return nil, err
		}
		if err := labelPart("value", v, false); err != nil {
			return nil, err
		}
		if _, dup := out[k]; dup {
			return nil, invalid("label key %q given twice", k)
		}
		out[k] = v
	}
	return out, nil
}

func labelPart(what, s string, slash bool) error {
	if s == "" || len(s) > 63 {
		return invalid("label %s %q must be 1 to 63 characters", what, s)
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' || slash && c == '/'
		if !ok {
			return invalid("label %s %q has %q; use letters, digits, '_', '.', '-'", what, s, c)
		}
	}
	return nil
}

// Placement is a volume's placement constraints, parsed.
type Placement struct {
	Pin   map[string]string // a node must carry every one of these labels
	Avoid map[string]string // a node must carry none of these labels
}

// ParsePlacement parses a volume's pin and avoid label lists.
func ParsePlacement(pin, avoid string) (Placement, error) {
	p, err := ParseLabels(pin)
	if err != nil {
		return Placement{}, fmt.Errorf("pin: %w", err)
	}
	a, err := ParseLabels(avoid)
	if err != nil {
		return Placement{}, fmt.Errorf("avoid: %w", err)
	}
	return Placement{Pin: p, Avoid: a}, nil
}

// Allows says whether a node carrying labels may hold a replica.
func (p Placement) Allows(labels map[string]string) bool {
	for k, v := range p.Pin {
		if labels[k] != v {
			return false
		}
	}
	for k, v := range p.Avoid {
		if labels[k] == v {
			return false
		}
	}
	return true
}

// SameLabels says whether two label lists that ParseLabels accepts hold
// the same labels, in any order.
func SameLabels(a, b string) bool {
	ma, _ := ParseLabels(a)
	mb, _ := ParseLabels(b)
	return maps.Equal(ma, mb)
}

// normalLabels parses a label list and prints it back sorted, so two specs
// asking for the same labels compare equal.
func normalLabels(what, s string) (string, error) {
	m, err := ParseLabels(s)
	if err != nil {
		return "", fmt.Errorf("%s labels: %w", what, err)
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ","), nil
}
