package node

import (
	"github.com/prometheus/client_golang/prometheus"
)

var (
	poolCapacityDesc  = prometheus.NewDesc("ballast_pool_capacity_bytes", "Capacity of a pool dir of this node.", []string{"pool", "dir"}, nil)
	poolAllocatedDesc = prometheus.NewDesc("ballast_pool_allocated_bytes", "Bytes allocated in a pool dir of this node.", []string{"pool", "dir"}, nil)
	inSyncDesc        = prometheus.NewDesc("ballast_volume_in_sync_replicas", "In-sync replicas of a volume attached on this node.", []string{"volume"}, nil)
	repairsDesc       = prometheus.NewDesc("ballast_volume_repaired_blocks_total", "Blocks of a volume attached here repaired from a peer since it was attached.", []string{"volume"}, nil)
)

// Describe implements prometheus.Collector.
func (n *Node) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolCapacityDesc, poolAllocatedDesc, inSyncDesc, repairsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: this node's pools and the state
// of the volumes attached here, read at scrape time.
func (n *Node) Collect(ch chan<- prometheus.Metric) {
	for _, id := range n.order {
		p := n.pools[id]
		alloc, capacity, err := p.store.Usage()
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(poolCapacityDesc, prometheus.GaugeValue, float64(capacity), id, p.dir)
		ch <- prometheus.MustNewConstMetric(poolAllocatedDesc, prometheus.GaugeValue, float64(alloc), id, p.dir)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for name, a := range n.attached {
		ch <- prometheus.MustNewConstMetric(inSyncDesc, prometheus.GaugeValue, float64(len(a.engine.InSync())), name)
		ch <- prometheus.MustNewConstMetric(repairsDesc, prometheus.CounterValue, float64(a.engine.Repairs()), name)
	}
}
