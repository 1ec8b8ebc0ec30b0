package node

import (
	"slices"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

func TestDropFromInSync(t *testing.T) {
	vol := func(min int, inSync ...string) meta.Volume {
		return meta.Volume{Volume: spec.Volume{Name: "v", MinInSync: min}, InSync: inSync}
	}
	for _, c := range []struct {
		name string
		v    meta.Volume
		id   string
		want string // the set left, or "err:" and part of the error
	}{
		{"one of two, minimum 1", vol(1, "a", "b"), "b", "a"},
		{"the first of three, minimum 2", vol(2, "a", "b", "c"), "a", "b c"},
		{"minimum unset counts as 1", vol(0, "a", "b"), "a", "b"},
		{"the last one", vol(1, "a"), "a", "err:would have 0 in-sync replicas, below its minimum of 1"},
		{"below a minimum of 2", vol(2, "a", "b"), "a", "err:would have 1 in-sync replicas, below its minimum of 2"},
		{"not in the set: nothing changes", vol(1, "a", "b"), "c", "a b"},
	} {
		before := slices.Clone(c.v.InSync)
		got, err := dropFromInSync(c.v, c.id)
		switch {
		case strings.HasPrefix(c.want, "err:"):
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(c.want, "err:")) {
				t.Errorf("%s: got %v, %v; want an error with %q", c.name, got, err, c.want)
			}
		case err != nil || strings.Join(got, " ") != c.want:
			t.Errorf("%s: got %v, %v; want %s", c.name, got, err, c.want)
		}
		if !slices.Equal(c.v.InSync, before) {
			t.Errorf("%s: the volume's own set changed to %v", c.name, c.v.InSync)
		}
	}
}
