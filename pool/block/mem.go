package block

import (
	"errors"
	"fmt"
	"sync"
)

// Mem is a Replica held in memory, for tests: it has no snapshots and no
// epoch to fence.
type Mem struct {
	mu   sync.RWMutex
	data []byte
}

// NewMem returns a zeroed in-memory device of size bytes.
func NewMem(size int64) *Mem { return &Mem{data: make([]byte, size)} }

func (m *Mem) ReadAt(p []byte, off int64) (int, error) {
	if err := Check(off, int64(len(p)), m.Size()); err != nil {
		return 0, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return copy(p, m.data[off:]), nil
}

func (m *Mem) WriteAt(p []byte, off int64) (int, error) {
	if err := Check(off, int64(len(p)), m.Size()); err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return copy(m.data[off:], p), nil
}

func (m *Mem) Flush() error { return nil }

func (m *Mem) Discard(off, length int64) error {
	if err := Check(off, length, m.Size()); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.data[off : off+length])
	return nil
}

func (m *Mem) Size() int64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.data))
}

// Resize grows the device to size bytes; the new space reads as zeros.
func (m *Mem) Resize(size int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if size < int64(len(m.data)) {
		return ErrOutOfRange
	}
	m.data = append(m.data, make([]byte, size-int64(len(m.data)))...)
	return nil
}

// Repair writes good at off.
func (m *Mem) Repair(off int64, good []byte) error {
	_, err := m.WriteAt(good, off)
	return err
}

// Snapshot is not supported.
func (m *Mem) Snapshot(string) error { return fmt.Errorf("snapshot: %w", errors.ErrUnsupported) }

// DeleteSnapshot is not supported.
func (m *Mem) DeleteSnapshot(string) error {
	return fmt.Errorf("delete snapshot: %w", errors.ErrUnsupported)
}

// Fence does nothing: a Mem has no epoch.
func (m *Mem) Fence(uint64) error { return nil }

// Close does nothing.
func (m *Mem) Close() error { return nil }

var _ Replica = (*Mem)(nil)
