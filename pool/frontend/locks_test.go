package frontend

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/spec"
)

// slowExporter exports every volume at once, except that the first export
// of hold waits for release.
type slowExporter struct {
	hold    string
	held    atomic.Bool
	started chan struct{}
	release chan struct{}
}

func (s *slowExporter) Export(vol spec.Name, _ block.Device) (string, error) {
	name := vol.String()
	if name == s.hold && !s.held.Swap(true) {
		close(s.started)
		<-s.release
	}
	return "/dev/fake-" + name, nil
}
func (s *slowExporter) Unexport(spec.Name) error { return nil }
func (s *slowExporter) Abort(spec.Name) error    { return nil }
func (s *slowExporter) Grow(spec.Name) error     { return nil }
func (s *slowExporter) Recover() error           { return nil }

// TestAttachesOfDifferentVolumesRunAtOnce: a slow attach of one volume
// (a long mkfs, say) does not hold up another's; a second attach of the
// same volume waits for the first.
func TestAttachesOfDifferentVolumesRunAtOnce(t *testing.T) {
	exp := &slowExporter{hold: "a", started: make(chan struct{}), release: make(chan struct{})}
	a := NewAttacher(exp)
	dev := block.NewMem(1 << 20)
	first := make(chan error, 1)
	go func() { _, err := a.AttachBlock(context.Background(), spec.MustName("a"), dev); first <- err }()
	<-exp.started

	other := make(chan error, 1)
	go func() { _, err := a.AttachBlock(context.Background(), spec.MustName("b"), dev); other <- err }()
	select {
	case err := <-other:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		close(exp.release)
		t.Fatal("the attach of b waited for the attach of a")
	}

	again := make(chan error, 1)
	go func() { _, err := a.AttachBlock(context.Background(), spec.MustName("a"), dev); again <- err }()
	select {
	case <-again:
		t.Fatal("a second attach of a ran while the first was under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(exp.release)
	for _, c := range []chan error{first, again} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	if at, ok := a.record("a"); !ok || at.devPath != "/dev/fake-a" {
		t.Errorf("record of a: %+v, %v", at, ok)
	}
}
