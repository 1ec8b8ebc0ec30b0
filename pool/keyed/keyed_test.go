package keyed

import (
	"testing"
	"time"
)

func TestMutex(t *testing.T) {
	var k Mutex
	unlockA := k.Lock("a")

	other := make(chan struct{})
	go func() { k.Lock("b")(); close(other) }()
	select {
	case <-other:
	case <-time.After(10 * time.Second):
		t.Fatal("locking b waited for a")
	}

	same := make(chan struct{})
	go func() { k.Lock("a")(); close(same) }()
	select {
	case <-same:
		t.Fatal("a was locked twice at once")
	case <-time.After(50 * time.Millisecond):
	}
	unlockA()
	select {
	case <-same:
	case <-time.After(10 * time.Second):
		t.Fatal("a stayed locked after its unlock")
	}
}
