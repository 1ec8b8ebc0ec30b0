package node

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/remote"
)

// BenchmarkReplicaWrites and BenchmarkReplicaReads: 4 KiB writes or reads
// at queue depth 16 to a replica on
// this node, served by the replica server on a listener of its own
// ("direct") and through ServeReplicas, which shares the port with the
// peer service ("shared port"). Compare the two in one run: the sharing
// must cost the data path nothing measurable.
func BenchmarkReplicaWrites(b *testing.B) { benchReplicaIO(b, false) }
func BenchmarkReplicaReads(b *testing.B)  { benchReplicaIO(b, true) }

func benchReplicaIO(b *testing.B, read bool) {
	for _, mode := range []string{"direct", "shared port"} {
		b.Run(mode, func(b *testing.B) {
			n, addr := servingNode(b)
			if mode == "direct" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				go n.srv.Serve(ln)
				addr = ln.Addr().String()
			}
			pid := n.order[0]
			const size = 64 << 20
			r, err := n.pools[pid].store.Create("r", size)
			if err != nil {
				b.Fatal(err)
			}
			r.Close()
			c, err := remote.Dial(context.Background(), addr, testSecret, "r", 1)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, block.Size)
			b.SetBytes(block.Size)
			b.ResetTimer()
			var wg sync.WaitGroup
			var next sync.Mutex
			i := 0
			for range 16 {
				wg.Go(func() {
					for {
						next.Lock()
						if i >= b.N {
							next.Unlock()
							return
						}
						off := int64(i%(size/block.Size)) * block.Size
						i++
						next.Unlock()
						var err error
						if read {
							_, err = c.ReadAt(make([]byte, block.Size), off)
						} else {
							_, err = c.WriteAt(buf, off)
						}
						if err != nil {
							panic(fmt.Sprintf("I/O: %v", err))
						}
					}
				})
			}
			wg.Wait()
		})
	}
}
