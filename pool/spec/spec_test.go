package spec

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"1G": 1 << 30, "10g": 10 << 30, "512MiB": 512 << 20, "1.5T": 3 << 39,
		"4096": 4096, " 2 GB ": 2 << 30, "1k": 1024, "1P": 1 << 50,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"": "empty", "0": "zero", "0G": "zero", "-1G": "negative", "abc": "unit",
		"10X": "unknown unit", "G": "no number", "99999999999999999999": "too large",
		"2P": "1 PiB", "9223372036854775807K": "too large", "1..2G": "not a number", "0.1": "less than one byte",
	}
	for in, want := range bad {
		_, err := ParseSize(in)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSize(%q) error = %v; want one saying %q", in, err, want)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "pg-data_1", "v.1", strings.Repeat("x", 64)} {
		if err := ValidateName("volume name", ok); err != nil {
			t.Errorf("ValidateName(%q) = %v", ok, err)
		}
	}
	bad := map[string]string{
		"": "empty", strings.Repeat("x", 65): "65 characters", "a/b": "'/'", "..": "..",
		"a..b": "..", ".": "not allowed", "a b": "' '", "é": "'é'", "a\x00": "'\\x00'",
	}
	for in, want := range bad {
		err := ValidateName("volume name", in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%q) = %v; want error containing %q", in, err, want)
		}
	}
}

func TestNormalize(t *testing.T) {
	v := Volume{Name: "v", Size: 100<<20 + 1}
	if err := v.Normalize(); err != nil {
		t.Fatal(err)
	}
	if v.Repl != 1 || v.FS != "ext4" || v.Size != 100<<20+4096 {
		t.Errorf("defaults/rounding: %+v", v)
	}
	p := Volume{Name: "v", Size: 1 << 30, Pin: " zone=a,rack=r1"}
	if err := p.Normalize(); err != nil || p.Pin != "rack=r1,zone=a" {
		t.Errorf("pin not normalized: %q %v", p.Pin, err)
	}
	for _, c := range []struct {
		v    Volume
		want string
	}{
		{Volume{Name: "v", Size: 1 << 20}, "below"},
		{Volume{Name: "v", Size: 100 << 20, FS: "xfs"}, "below"},
		{Volume{Name: "v", Size: 1 << 30, FS: "btrfs"}, "not supported"},
		{Volume{Name: "v", Size: 1 << 30, Repl: 9}, "out of range"},
		{Volume{Name: "v", Size: -5}, "positive"},
		{Volume{Name: "v", FromSnapshot: "nosnap"}, "VOLUME@SNAPSHOT"},
		{Volume{Name: "v", FromSnapshot: "a@b/c"}, "snapshot name"},
		{Volume{Name: "a/b", Size: 1 << 30}, "'/'"},
		{Volume{Name: "v", Size: 1 << 30, Pin: "zone"}, "pin labels"},
		{Volume{Name: "v", Size: 1 << 30, Repl: 2, MinInSync: 3}, "from 1 to its replication factor 2"},
		{Volume{Name: "v", Size: 1 << 30, MinInSync: -1}, "minimum in-sync"},
		{Volume{Name: "v", Size: 1 << 30, Avoid: "rack=a b"}, "avoid labels"},
		{Volume{Name: "v", Size: 1 << 30, Locality: "always"}, `locality "always" for volume "v" is not valid; use best-effort or none`},
	} {
		err := c.v.Normalize()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Normalize(%+v) = %v; want %q", c.v, err, c.want)
		}
	}
}

func TestLocalityDefault(t *testing.T) {
	for in, want := range map[string]string{"": "best-effort", "best-effort": "best-effort", "None": "none"} {
		v := Volume{Name: "v", Size: 1 << 30, Locality: in}
		if err := v.Normalize(); err != nil || v.Locality != want {
			t.Errorf("locality %q normalized to %q, %v; want %q", in, v.Locality, err, want)
		}
	}
}

func TestSizeWithoutUnitHint(t *testing.T) {
	v := Volume{Name: "v", Size: 5}
	err := v.Normalize()
	if err == nil || !strings.Contains(err.Error(), "below the 16MiB minimum for ext4; a size without a unit is in bytes: write 5G for 5 GiB") {
		t.Fatalf("a 5-byte volume: %v; want the minimum and the unit hint", err)
	}
	v = Volume{Name: "v", Size: 8 << 20}
	if err := v.Normalize(); err == nil || strings.Contains(err.Error(), "without a unit") {
		t.Fatalf("an 8 MiB volume: %v; want the minimum without the unit hint", err)
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1G", "1.5T", "-1", "0", "99999999999999999999", "4096", "1e9G", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if n <= 0 || n > MaxSize {
			t.Fatalf("ParseSize(%q) = %d accepted out of range", s, n)
		}
	})
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"a", "..", "a/b", "x.y-z_1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateName("volume name", s) != nil {
			return
		}
		if s == "" || len(s) > MaxNameLen || strings.ContainsAny(s, "/\x00 ") || strings.Contains(s, "..") {
			t.Fatalf("accepted bad name %q", s)
		}
	})
}

// TestFilesystemRules: the rules the front doors share (CSI, Docker, the
// CLI) come from here.
func TestFilesystemRules(t *testing.T) {
	if MinSizeFor("xfs") != 300<<20 || MinSizeFor("ext4") != MinSize || MinSizeFor("") != MinSize {
		t.Errorf("MinSizeFor: xfs %d, ext4 %d, none %d", MinSizeFor("xfs"), MinSizeFor("ext4"), MinSizeFor(""))
	}
	for fs, want := range map[string]bool{"ext4": true, "xfs": true, "btrfs": false, "": false, "EXT4": false} {
		if ValidFS(fs) != want {
			t.Errorf("ValidFS(%q) = %v", fs, !want)
		}
	}
	v := Volume{Name: "v", Size: 1 << 30, Repl: MaxRepl + 1}
	if err := v.Normalize(); err == nil {
		t.Errorf("repl %d accepted", MaxRepl+1)
	}
	v = Volume{Name: "v", Size: 100 << 20, FS: "xfs"}
	if err := v.Normalize(); err == nil {
		t.Error("a 100 MiB xfs volume accepted")
	}
}

func TestParseName(t *testing.T) {
	n, err := ParseName("vol-1.a_b")
	if err != nil || n.String() != "vol-1.a_b" || n.IsZero() {
		t.Fatalf("ParseName: %v, %v", n, err)
	}
	for _, bad := range []string{"", "..", "a/b", "a..b", "."} {
		if n, err := ParseName(bad); !errors.Is(err, ErrInvalid) || !n.IsZero() {
			t.Errorf("ParseName(%q): %v, %v; want ErrInvalid and no name", bad, n, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustName of a bad name did not panic")
		}
	}()
	MustName("../etc")
}
