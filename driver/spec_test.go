package driver

import (
	"errors"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/spec"
)

const gib = int64(1) << 30

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]string
		want spec.Volume
	}{
		{"pgdata", map[string]string{"size": "10G", "repl": "2"},
			spec.Volume{Name: "pgdata", Size: 10 * gib, Repl: 2, FS: "ext4", MinInSync: 1}},
		{"pgdata", map[string]string{"size": "1G", "repl": "3", "fs": "XFS", "min_in_sync": "2"},
			spec.Volume{Name: "pgdata", Size: gib, Repl: 3, FS: "xfs", MinInSync: 2}},
		{"size=10G,repl=2,name=pgdata", nil,
			spec.Volume{Name: "pgdata", Size: 10 * gib, Repl: 2, FS: "ext4", MinInSync: 1}},
		{"size=10G;repl=2;name=pgdata", nil,
			spec.Volume{Name: "pgdata", Size: 10 * gib, Repl: 2, FS: "ext4", MinInSync: 1}},
		{" name=v1 , size=1G ,", nil,
			spec.Volume{Name: "v1", Size: gib, Repl: 1, FS: "ext4", MinInSync: 1}},
		// The same option in both places with the same meaning.
		{"size=1G,name=v1", map[string]string{"size": "1024M", "repl": "2"},
			spec.Volume{Name: "v1", Size: gib, Repl: 2, FS: "ext4", MinInSync: 1}},
		// Labels: alias, repeated inline, normalized.
		{"v1", map[string]string{"size": "1G", "labels": "zone=a,rack=r1", "avoid": "rack=r2"},
			spec.Volume{Name: "v1", Size: gib, Repl: 1, FS: "ext4", MinInSync: 1, Pin: "rack=r1,zone=a", Avoid: "rack=r2"}},
		{"name=v1,size=1G,pin=zone=a,pin=rack=r1", map[string]string{"labels": "rack=r1,zone=a"},
			spec.Volume{Name: "v1", Size: gib, Repl: 1, FS: "ext4", MinInSync: 1, Pin: "rack=r1,zone=a"}},
		// A clone takes its size, repl and fs from the snapshot.
		{"clone", map[string]string{"snapshot": "pgdata@s1"},
			spec.Volume{Name: "clone", FromSnapshot: "pgdata@s1", MinInSync: 1}},
		// Sizes round up to whole 4 KiB blocks.
		{"v2", map[string]string{"size": "17000001"},
			spec.Volume{Name: "v2", Size: 17002496, Repl: 1, FS: "ext4", MinInSync: 1}},
		// Locality: best-effort unless asked otherwise, inline or as --opt.
		{"v3", map[string]string{"size": "1G", "locality": "None"},
			spec.Volume{Name: "v3", Size: gib, Repl: 1, FS: "ext4", MinInSync: 1, Locality: "none"}},
		{"size=1G,locality=none,name=v3", map[string]string{"locality": "none"},
			spec.Volume{Name: "v3", Size: gib, Repl: 1, FS: "ext4", MinInSync: 1, Locality: "none"}},
		{"v4", map[string]string{"size": "1G", "encrypted": "true", "secret_key": "db"},
			spec.Volume{Name: "v4", Size: gib, Repl: 1, FS: "ext4", MinInSync: 1, Encrypted: true, SecretKey: "db"}},
		{"size=1G,encrypted=true,secret_key=db,name=v4", map[string]string{"encrypted": "true"},
			spec.Volume{Name: "v4", Size: gib, Repl: 1, FS: "ext4", MinInSync: 1, Encrypted: true, SecretKey: "db"}},
	} {
		if tc.want.Locality == "" {
			tc.want.Locality = spec.LocalityBestEffort
		}
		got, err := ParseSpec(tc.name, tc.opts)
		if err != nil {
			t.Errorf("ParseSpec(%q, %v): %v", tc.name, tc.opts, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseSpec(%q, %v) = %+v, want %+v", tc.name, tc.opts, got, tc.want)
		}
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]string
		want string // in the message
	}{
		{"v1", map[string]string{"size": "1G", "sise": "2G", "colour": "red"}, `unknown options "colour", "sise" in --opt; valid options are size`},
		{"size=1G,name=v1,ha=2", nil, `unknown option "ha" in inline spec`},
		{"size=1G,repl=2", nil, "has no name=; add name=VOLUME"},
		{"size=1G,name=", nil, "option name in inline spec"},
		{"size=1G,name=v1,junk", nil, `"junk" is not KEY=VALUE`},
		{"size=1G,name=v1", map[string]string{"size": "2G"}, `option size is "1G" in the inline spec but "2G" as --opt`},
		{"size=1G,name=v1,repl=2", map[string]string{"repl": "3"}, "option repl is"},
		{"size=1G,name=v1,fs=ext4", map[string]string{"fs": "xfs"}, "option fs is"},
		{"size=1G,name=v1,pin=zone=a", map[string]string{"pin": "zone=b"}, "option pin is"},
		{"size=1G,name=v1,size=2G", nil, "option size is given twice"},
		{"size=1G,name=v1,name=v2", nil, "option name is given twice"},
		{"v1", map[string]string{"size": "ten"}, `size "ten"`},
		{"v1", map[string]string{"size": "-1G"}, "negative"},
		{"v1", map[string]string{"size": "2P"}, "1 PiB limit"},
		{"v1", map[string]string{"size": "1M"}, "below the 16MiB minimum"},
		{"v1", map[string]string{"size": "100M", "fs": "xfs"}, "below the 300MiB minimum for xfs"},
		{"v1", map[string]string{"size": "1G", "fs": "btrfs"}, `filesystem "btrfs"`},
		{"v1", map[string]string{"repl": "2"}, "needs a size: add --opt size=10G"},
		{"v1", nil, "needs a size"},
		{"v1", map[string]string{"size": "1G", "repl": "0"}, "repl=\"0\" must be a number from 1 to 5"},
		{"v1", map[string]string{"size": "1G", "repl": "two"}, "must be a number from 1 to 5"},
		{"v1", map[string]string{"size": "1G", "repl": "6"}, "must be a number from 1 to 5"},
		{"v1", map[string]string{"size": "1G", "repl": "2", "min_in_sync": "3"}, "minimum in-sync count 3"},
		{"v1", map[string]string{"size": ""}, "option size in --opt is empty"},
		{"v1", map[string]string{"size": "1G", "name": "v2"}, "option name is not an --opt"},
		{"v1", map[string]string{"size": "1G", "pin": "zone"}, "pin labels"},
		{"v1", map[string]string{"size": "1G", "avoid": "rack=r 1"}, "avoid labels"},
		{"v1", map[string]string{"snapshot": "pgdata"}, "must be VOLUME@SNAPSHOT"},
		{"v1", map[string]string{"size": "1G", "locality": "always"}, `option locality="always" must be best-effort or none`},
		{"size=1G,name=v1,locality=none", map[string]string{"locality": "best-effort"}, "option locality is"},
		{"v1", map[string]string{"size": "1G", "encrypted": "yes please"}, `option encrypted="yes please" must be true or false`},
		{"v1", map[string]string{"size": "1G", "encrypted": "true"}, "needs a secret key"},
		{"v1", map[string]string{"size": "1G", "secret_key": "db"}, "is not encrypted"},
		{"size=1G,name=v1,encrypted=true,secret_key=a", map[string]string{"secret_key": "b"}, "option secret_key is"},
		{"size=1G,name=v1,encrypted=false,secret_key=a", map[string]string{"encrypted": "true"}, "option encrypted is"},
		{"bad name!", map[string]string{"size": "1G"}, `volume name "bad name!" has ' '`},
		{"name=bad/name,size=1G", nil, "volume name"},
		{"", map[string]string{"size": "1G"}, "volume name is empty"},
	} {
		_, err := ParseSpec(tc.name, tc.opts)
		if err == nil {
			t.Errorf("ParseSpec(%q, %v) succeeded, want an error with %q", tc.name, tc.opts, tc.want)
			continue
		}
		if !errors.Is(err, spec.ErrInvalid) {
			t.Errorf("ParseSpec(%q, %v): %v does not wrap spec.ErrInvalid", tc.name, tc.opts, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSpec(%q, %v): %q does not say %q", tc.name, tc.opts, err, tc.want)
		}
	}
}

func TestVolumeName(t *testing.T) {
	for in, want := range map[string]string{
		"pgdata":                      "pgdata",
		"size=10G,repl=2,name=pgdata": "pgdata",
		"name=v1":                     "v1",
		"name=v1;size=1G":             "v1",
	} {
		if got, err := volumeName(in); err != nil || got != want {
			t.Errorf("volumeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "size=1G", "name=v1,bogus=1", "a,b", "name=.."} {
		if got, err := volumeName(in); err == nil {
			t.Errorf("volumeName(%q) = %q, want an error", in, got)
		}
	}
}

// FuzzParseSpec: ParseSpec never panics, and whatever it accepts is a
// valid, already normalized spec.
func FuzzParseSpec(f *testing.F) {
	f.Add("size=10G,repl=2,name=pgdata", "", "", "", "")
	f.Add("v1", "size", "1G", "repl", "2")
	f.Add("name=v1;pin=zone=a;pin=rack=r1", "size", "1.5G", "labels", "zone=a,rack=r1")
	f.Add("clone", "snapshot", "v1@s1", "fs", "xfs")
	f.Add("name=v1,size=1G", "size", "1024M", "min_in_sync", "1")
	f.Add("v1", "size", "4095", "avoid", "rack=r2")
	f.Fuzz(func(t *testing.T, name, k1, v1, k2, v2 string) {
		opts := map[string]string{}
		if k1 != "" {
			opts[k1] = v1
		}
		if k2 != "" {
			opts[k2] = v2
		}
		v, err := ParseSpec(name, opts)
		if err != nil {
			if !errors.Is(err, spec.ErrInvalid) {
				t.Fatalf("ParseSpec(%q, %v): %v does not wrap spec.ErrInvalid", name, opts, err)
			}
			return
		}
		again := v
		if err := again.Normalize(); err != nil {
			t.Fatalf("ParseSpec(%q, %v) = %+v, which Normalize rejects: %v", name, opts, v, err)
		}
		if again != v {
			t.Fatalf("ParseSpec(%q, %v) = %+v, not normalized (%+v)", name, opts, v, again)
		}
		if got, err := volumeName(name); err != nil || got != v.Name {
			t.Fatalf("volumeName(%q) = %q, %v; ParseSpec named it %q", name, got, err, v.Name)
		}
	})
}
