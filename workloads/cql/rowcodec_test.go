package cql

import (
	"bytes"
	"testing"
)

func cells(r []byte) map[int]string {
	out := map[int]string{}
	cr := cellReader{b: r[1:]}
	for {
		id, v, null, ok := cr.next()
		if !ok {
			break
		}
		if null {
			out[id] = "<null>"
		} else {
			out[id] = string(v)
		}
	}
	return out
}

func TestMergeRowValues(t *testing.T) {
	older := appendCell(appendCell([]byte{rowMarker}, 1, []byte("a")), 3, []byte("c"))
	newer := appendCell(appendCell(appendCell([]byte{0}, 1, nil), 2, []byte("b")), 4, []byte{})
	got, err := mergeRowValues(older, newer)
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != rowMarker {
		t.Errorf("row marker lost: flags %x", got[0])
	}
	want := map[int]string{1: "<null>", 2: "b", 3: "c", 4: ""}
	if c := cells(got); len(c) != len(want) || c[1] != want[1] || c[2] != want[2] || c[3] != want[3] || c[4] != want[4] {
		t.Errorf("merged cells %v, want %v", c, want)
	}
	// Folding through the pebble merger gives the same result.
	m, _ := rowMerger.Merge(nil, newer)
	if err := m.MergeOlder(older); err != nil {
		t.Fatal(err)
	}
	viaMerger, _, err := m.Finish(true)
	if err != nil || !bytes.Equal(viaMerger, got) {
		t.Errorf("merger result %x (%v), want %x", viaMerger, err, got)
	}
	if _, err := mergeRowValues(older, []byte{0, 0x80}); err == nil {
		t.Errorf("merging a malformed value succeeded")
	}
}

func TestRowLive(t *testing.T) {
	for _, c := range []struct {
		v    []byte
		want bool
	}{
		{nil, false},
		{[]byte{rowMarker}, true},
		{appendCell([]byte{0}, 1, nil), false},
		{appendCell(appendCell([]byte{0}, 1, nil), 2, []byte("x")), true},
	} {
		if got := rowLive(c.v); got != c.want {
			t.Errorf("rowLive(%x) = %v, want %v", c.v, got, c.want)
		}
	}
}
