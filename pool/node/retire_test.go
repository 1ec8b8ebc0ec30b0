package node

import (
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/meta"
)

func TestSuperseded(t *testing.T) {
	for _, c := range []struct {
		name   string
		rec    *meta.Attachment
		fenced bool
		want   string // "" or a part of the reason
	}{
		{"ours at our epoch", &meta.Attachment{Node: "a", Epoch: 3}, false, ""},
		{"taken over", &meta.Attachment{Node: "b", Epoch: 4}, false, "node b took it over at epoch 4"},
		{"taken over and back", &meta.Attachment{Node: "a", Epoch: 5}, false, "attached again at epoch 5"},
		{"record gone", nil, false, "record is gone"},
		{"I/O fenced, record unread", nil, true, "fenced by a newer owner"},
		{"I/O fenced, record still ours", &meta.Attachment{Node: "a", Epoch: 3}, true, "fenced by a newer owner"},
	} {
		got := superseded("a", 3, c.rec, c.fenced)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: superseded = %q, want %q", c.name, got, c.want)
		}
	}
}
