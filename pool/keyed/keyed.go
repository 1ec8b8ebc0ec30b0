// Package keyed has a mutex per key, so that the operations on one volume
// run one at a time while those on different volumes run at once.
package keyed

import "sync"

// Mutex is a set of mutexes, one per key, made as keys are first locked.
// The zero value is ready to use; it must not be copied after first use.
type Mutex struct {
	mu sync.Mutex
	m  map[string]*sync.Mutex
}

// Lock locks key and returns the function that unlocks it.
func (k *Mutex) Lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*sync.Mutex{}
	}
	l, ok := k.m[key]
	if !ok {
		l = &sync.Mutex{}
		k.m[key] = l
	}
	k.mu.Unlock()
	l.Lock()
	return l.Unlock
}
