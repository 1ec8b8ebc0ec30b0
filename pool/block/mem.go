package block

import "sync"

// Mem is a Device held in memory, for tests.
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
