// Package metrics exposes Ballast's figures to Prometheus: a block.Device
// wrapper that counts each volume's I/O (operations, bytes, errors, latency)
// and the registry the daemon serves at /metrics.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ballast-io/ballast/pool/block"
)

// IO holds the per-volume I/O metrics.
type IO struct {
	ops     *prometheus.CounterVec
	bytes   *prometheus.CounterVec
	errors  *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// NewIO registers the I/O metrics with reg.
func NewIO(reg prometheus.Registerer) *IO {
	m := &IO{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ballast_volume_ops_total", Help: "Block operations served for a volume, by operation.",
		}, []string{"volume", "op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ballast_volume_bytes_total", Help: "Bytes read or written on a volume, by operation.",
		}, []string{"volume", "op"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ballast_volume_errors_total", Help: "Block operations that failed, by operation.",
		}, []string{"volume", "op"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ballast_volume_op_seconds", Help: "Latency of block operations, by operation.",
			Buckets: prometheus.ExponentialBuckets(20e-6, 2.5, 12), // 20 µs .. ~1.2 s
		}, []string{"volume", "op"}),
	}
	reg.MustRegister(m.ops, m.bytes, m.errors, m.latency)
	return m
}

// Wrap returns dev counting its I/O under the volume's name.
func (m *IO) Wrap(volume string, dev block.Device) block.Device {
	d := &device{Device: dev}
	for i, op := range []string{"read", "write", "flush", "discard"} {
		d.ops[i] = opMetrics{
			ops:     m.ops.WithLabelValues(volume, op),
			bytes:   m.bytes.WithLabelValues(volume, op),
			errors:  m.errors.WithLabelValues(volume, op),
			latency: m.latency.WithLabelValues(volume, op),
		}
	}
	return d
}

// Forget drops a volume's series, when it is detached from this node.
func (m *IO) Forget(volume string) {
	for _, v := range []*prometheus.MetricVec{m.ops.MetricVec, m.bytes.MetricVec, m.errors.MetricVec, m.latency.MetricVec} {
		v.DeletePartialMatch(prometheus.Labels{"volume": volume})
	}
}

const (
	opRead = iota
	opWrite
	opFlush
	opDiscard
)

type opMetrics struct {
	ops, bytes, errors prometheus.Counter
	latency            prometheus.Observer
}

func (o *opMetrics) done(start time.Time, n int64, err error) {
	o.ops.Inc()
	o.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		o.errors.Inc()
		return
	}
	o.bytes.Add(float64(n))
}

// device is a block.Device that counts what passes through it.
type device struct {
	block.Device
	ops [4]opMetrics
}

func (d *device) ReadAt(p []byte, off int64) (int, error) {
	start := time.Now()
	n, err := d.Device.ReadAt(p, off)
	d.ops[opRead].done(start, int64(n), err)
	return n, err
}

func (d *device) WriteAt(p []byte, off int64) (int, error) {
	start := time.Now()
	n, err := d.Device.WriteAt(p, off)
	d.ops[opWrite].done(start, int64(n), err)
	return n, err
}

func (d *device) Flush() error {
	start := time.Now()
	err := d.Device.Flush()
	d.ops[opFlush].done(start, 0, err)
	return err
}

func (d *device) Discard(off, length int64) error {
	start := time.Now()
	err := d.Device.Discard(off, length)
	d.ops[opDiscard].done(start, length, err)
	return err
}
