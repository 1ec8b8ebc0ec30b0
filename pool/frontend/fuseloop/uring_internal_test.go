package fuseloop

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestURingLayout pins the io_uring structures to <linux/io_uring.h>
// (offsets as gcc gives them on amd64).
func TestURingLayout(t *testing.T) {
	var s uringSQE
	var p uringParams
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"sizeof(sqe) with SQE128", unsafe.Sizeof(s), 128},
		{"sqe.fd", unsafe.Offsetof(s.fd), 4},
		{"sqe.off (cmd_op)", unsafe.Offsetof(s.off), 8},
		{"sqe.addr", unsafe.Offsetof(s.addr), 16},
		{"sqe.len", unsafe.Offsetof(s.len), 24},
		{"sqe.uring_cmd_flags", unsafe.Offsetof(s.opFlags), 28},
		{"sqe.user_data", unsafe.Offsetof(s.userData), 32},
		{"sqe.buf_index", unsafe.Offsetof(s.bufIndex), 40},
		{"sqe.file_index", unsafe.Offsetof(s.fileIndex), 44},
		{"sqe.cmd", unsafe.Offsetof(s.cmd), 48},
		{"sizeof(cqe)", unsafe.Sizeof(uringCQE{}), 16},
		{"sizeof(io_uring_params)", unsafe.Sizeof(p), 120},
		{"params.features", unsafe.Offsetof(p.features), 20},
		{"params.sq_off", unsafe.Offsetof(p.sqOff), 40},
		{"params.cq_off", unsafe.Offsetof(p.cqOff), 80},
		{"sq_off.user_addr", unsafe.Offsetof(p.sqOff.userAddr), 32},
		{"cq_off.cqes", unsafe.Offsetof(p.cqOff.cqes), 20},
		{"sizeof(iovec[2])", unsafe.Sizeof([2]unix.Iovec{}), 32},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestURingNop drives the ring itself with NOPs: more than fit the SQ at
// once, so the slots and the CQ wrap around.
func TestURingNop(t *testing.T) {
	r, err := newURing(4, 8, 0)
	if err != nil {
		t.Skipf("io_uring unavailable: %v", err)
	}
	defer r.close()
	seen := map[uint64]bool{}
	next := uint64(0)
	for round := 0; round < 10; round++ {
		for {
			sqe, err := r.getSQE()
			if err == errSQFull {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			sqe.opcode = ioringOpNop
			sqe.userData = next
			next++
		}
		for {
			if _, err := r.submit(1); err != unix.EINTR {
				if err != nil {
					t.Fatal(err)
				}
				break
			}
		}
		r.reap(func(ud uint64, res int32) {
			if res != 0 || seen[ud] {
				t.Errorf("cqe %d: res %d, seen before %v", ud, res, seen[ud])
			}
			seen[ud] = true
		})
	}
	for {
		if _, err := r.submit(0); err != unix.EINTR {
			break
		}
	}
	r.reap(func(ud uint64, res int32) { seen[ud] = true })
	if len(seen) != int(next) || next < 40 {
		t.Fatalf("%d of %d NOPs completed", len(seen), next)
	}
}

func TestURingPayloadSize(t *testing.T) {
	for _, c := range []struct{ maxWrite, want int }{{256 << 10, 256 << 10}, {4096, 8192}, {10000, 12288}} {
		if got := uringPayloadSize(c.maxWrite); got != c.want {
			t.Errorf("uringPayloadSize(%d) = %d, want %d", c.maxWrite, got, c.want)
		}
	}
	if n, err := possibleCPUs(); err != nil || n < 1 {
		t.Fatalf("possibleCPUs = %d, %v", n, err)
	}
}
