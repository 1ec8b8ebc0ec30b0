package spec

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLabels(t *testing.T) {
	got, err := ParseLabels("zone=a, rack=r1,topology.ballast.io/host=n-1")
	if err != nil || len(got) != 3 || got["zone"] != "a" || got["rack"] != "r1" || got["topology.ballast.io/host"] != "n-1" {
		t.Fatalf("ParseLabels = %v, %v", got, err)
	}
	if got, err := ParseLabels(" "); got != nil || err != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	for in, want := range map[string]string{
		"zone":          "key=value",
		"=a":            "1 to 63",
		"zone=":         "1 to 63",
		"zone=a,zone=b": "twice",
		"zo ne=a":       "' '",
		"zone=a/b":      "'/'",
		"zone=a,,":      "key=value",
	} {
		_, err := ParseLabels(in)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseLabels(%q) = %v; want an error saying %q", in, err, want)
		}
	}
}

func FuzzParseLabels(f *testing.F) {
	for _, s := range []string{"zone=a,rack=r1", "a=b=c", ",", "k/x=v"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseLabels(s)
		if err != nil {
			return
		}
		for k, v := range m {
			if k == "" || v == "" || strings.ContainsAny(k+v, ",= ") {
				t.Fatalf("accepted bad label %q=%q from %q", k, v, s)
			}
		}
	})
}

func TestSameLabels(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"zone=a,rack=r1", "rack=r1, zone=a", true},
		{"", "", true},
		{"zone=a", "zone=b", false},
		{"zone=a", "zone=a,rack=r1", false},
		{"zone=a", "", false},
	} {
		if got := SameLabels(c.a, c.b); got != c.want {
			t.Errorf("SameLabels(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestPlacement(t *testing.T) {
	p, err := ParsePlacement("zone=a", "rack=r1")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"zone": "a", "rack": "r2"}, true},
		{map[string]string{"zone": "a", "rack": "r1"}, false}, // avoided
		{map[string]string{"zone": "b"}, false},               // not pinned
		{nil, false},
	} {
		if got := p.Allows(c.labels); got != c.want {
			t.Errorf("Allows(%v) = %v, want %v", c.labels, got, c.want)
		}
	}
	if !(Placement{}).Allows(nil) {
		t.Error("no constraints: a node without labels is refused")
	}
	if _, err := ParsePlacement("zone", ""); err == nil || !strings.HasPrefix(err.Error(), "pin: ") {
		t.Errorf("bad pin: %v", err)
	}
	if _, err := ParsePlacement("", "a=b=c,"); err == nil || !strings.HasPrefix(err.Error(), "avoid: ") {
		t.Errorf("bad avoid: %v", err)
	}
}
