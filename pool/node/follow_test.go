package node

import (
	"errors"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/meta"
)

func TestDecideClaim(t *testing.T) {
	onA := &meta.Attachment{Volume: "v", Node: "a", MountPath: "/m/v"}
	onB := &meta.Attachment{Volume: "v", Node: "b", MountPath: "/m/v"}
	cases := []struct {
		name        string
		old         *meta.Attachment
		alive, frce bool
		want        claim
		err         string
	}{
		{"attached nowhere", nil, false, false, claimFree, ""},
		{"ours already", onB, true, false, claimOwn, ""},
		{"ours, even forced", onB, true, true, claimOwn, ""},
		{"owner down: take over without force", onA, false, false, claimDeadNode, ""},
		{"owner up: refuse, naming it", onA, true, false, 0, "attached on node a"},
		{"owner up, forced", onA, true, true, claimForced, ""},
	}
	for _, c := range cases {
		got, err := decideClaim("v", c.old, "b", c.alive, c.frce)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, api.ErrInUse) {
				t.Errorf("%s: got %v, %v; want ErrInUse naming %q", c.name, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}
