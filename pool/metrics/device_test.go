package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ballast-io/ballast/pool/block"
)

func TestWrapCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewIO(reg)
	d := m.Wrap("v1", block.NewMem(1<<20))
	buf := make([]byte, 2*block.Size)
	for range 3 {
		if _, err := d.WriteAt(buf, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(buf, 1<<20); err == nil {
		t.Fatal("read past the end succeeded")
	}
	d.Flush()
	want := `
# HELP ballast_volume_bytes_total Bytes read or written on a volume, by operation.
# TYPE ballast_volume_bytes_total counter
ballast_volume_bytes_total{op="discard",volume="v1"} 0
ballast_volume_bytes_total{op="flush",volume="v1"} 0
ballast_volume_bytes_total{op="read",volume="v1"} 8192
ballast_volume_bytes_total{op="write",volume="v1"} 24576
# HELP ballast_volume_errors_total Block operations that failed, by operation.
# TYPE ballast_volume_errors_total counter
ballast_volume_errors_total{op="discard",volume="v1"} 0
ballast_volume_errors_total{op="flush",volume="v1"} 0
ballast_volume_errors_total{op="read",volume="v1"} 1
ballast_volume_errors_total{op="write",volume="v1"} 0
# HELP ballast_volume_ops_total Block operations served for a volume, by operation.
# TYPE ballast_volume_ops_total counter
ballast_volume_ops_total{op="discard",volume="v1"} 0
ballast_volume_ops_total{op="flush",volume="v1"} 1
ballast_volume_ops_total{op="read",volume="v1"} 2
ballast_volume_ops_total{op="write",volume="v1"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "ballast_volume_bytes_total", "ballast_volume_errors_total", "ballast_volume_ops_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.latency); n != 4 {
		t.Fatalf("%d latency series, want 4", n)
	}
	m.Forget("v1")
	if n := testutil.CollectAndCount(m.ops); n != 0 {
		t.Fatalf("%d series left after Forget", n)
	}
}
