package fuseloop

// URingRequests is the number of requests volume name's io_uring queues
// answered (0 if it has none).
func URingRequests(e *Exporter, name string) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.vols[name]; ok && x.ring != nil {
		return x.ring.requests.Load()
	}
	return 0
}

// SetURingPinning sets whether io_uring queue threads are pinned to their
// CPU (for the benchmark); it returns the old setting.
func SetURingPinning(pin bool) bool {
	old := pinURingQueues
	pinURingQueues = pin
	return old
}

// SetURingTuning sets the io_uring transport's inline serving and extra
// setup flags (for the benchmark); it returns the old settings.
func SetURingTuning(inline bool, setupFlags uint32) (bool, uint32) {
	oi, of := uringInline, uringSetupFlags
	uringInline, uringSetupFlags = inline, setupFlags
	return oi, of
}
