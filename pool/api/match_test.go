package api

import (
	"errors"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/spec"
)

func TestMatchSpec(t *testing.T) {
	have := spec.Volume{Name: "v", Size: 64 << 20, Repl: 2, FS: "ext4", Pin: "zone=a", MinInSync: 1}
	clone := spec.Volume{Name: "c", Size: 64 << 20, Repl: 2, FS: "xfs", FromSnapshot: "v@s", MinInSync: 1}
	for _, tc := range []struct {
		name      string
		have, req spec.Volume
		want      string // "" for a match
	}{
		{"same", have, have, ""},
		{"smaller size: grown since", have, spec.Volume{Name: "v", Size: 32 << 20, Repl: 2, FS: "ext4", Pin: "zone=a", MinInSync: 1}, ""},
		{"record without min-in-sync", spec.Volume{Name: "v", Size: 1 << 30, Repl: 1, FS: "ext4"}, spec.Volume{Name: "v", Size: 1 << 30, Repl: 1, FS: "ext4", MinInSync: 1}, ""},
		{"clone leaves size, repl, fs open", clone, spec.Volume{Name: "c", FromSnapshot: "v@s", MinInSync: 1}, ""},
		{"larger", have, spec.Volume{Name: "v", Size: 128 << 20, Repl: 2, FS: "ext4", Pin: "zone=a", MinInSync: 1}, "size 64MiB (asked for 128MiB)"},
		{"several", have, spec.Volume{Name: "v", Size: 64 << 20, Repl: 1, FS: "xfs", MinInSync: 1},
			"repl 2 (asked for 1), fs ext4 (asked for xfs), pin zone=a (asked for none)"},
		{"not a clone", clone, spec.Volume{Name: "c", Size: 64 << 20, Repl: 2, FS: "xfs", MinInSync: 1}, "snapshot v@s (asked for none)"},
		{"avoid", have, spec.Volume{Name: "v", Size: 64 << 20, Repl: 2, FS: "ext4", Pin: "zone=a", Avoid: "rack=r1", MinInSync: 1}, "avoid none (asked for rack=r1)"},
		{"record without locality is best-effort", have, spec.Volume{Name: "v", Size: 64 << 20, Repl: 2, FS: "ext4", Pin: "zone=a", MinInSync: 1, Locality: "best-effort"}, ""},
		{"locality", have, spec.Volume{Name: "v", Size: 64 << 20, Repl: 2, FS: "ext4", Pin: "zone=a", MinInSync: 1, Locality: "none"}, "locality best-effort (asked for none)"},
		{"min-in-sync", have, spec.Volume{Name: "v", Size: 64 << 20, Repl: 2, FS: "ext4", Pin: "zone=a", MinInSync: 2}, "min-in-sync 1 (asked for 2)"},
	} {
		err := MatchSpec(tc.have, tc.req)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "already exists with a different spec: "+tc.want+";")):
			t.Errorf("%s: %v; want the differences %q", tc.name, err, tc.want)
		}
	}
}
