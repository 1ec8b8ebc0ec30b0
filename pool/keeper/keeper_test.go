package keeper

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// connect starts serving one daemon's connection and returns its client,
// and a channel closed when Serve returns.
func connect(t *testing.T, k *Keeper) (*Client, chan struct{}) {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := k.Serve(os.NewFile(uintptr(pair[0]), "keeper")); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	c, err := NewClient(os.NewFile(uintptr(pair[1]), "daemon"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); <-done })
	return c, done
}

// heldPipe returns a pipe whose write end only the keeper will hold once
// given: its read end sees EOF when the keeper lets go.
func heldPipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

// open reports whether some write end of r's pipe is still open: a read
// that times out (nothing written, writers left) rather than EOF.
func open(t *testing.T, r *os.File) bool {
	t.Helper()
	r.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	defer r.SetReadDeadline(time.Time{})
	_, err := r.Read(make([]byte, 1))
	if errors.Is(err, io.EOF) {
		return false
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
	return true
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestHoldTakeDrop(t *testing.T) {
	k := New(time.Minute, quiet())
	defer k.Close()
	r, w := heldPipe(t)
	c1, done1 := connect(t, k)
	if err := c1.Hold("db", []byte(`{"mount":"/m"}`), w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if !open(t, r) {
		t.Fatal("the keeper did not keep its copy")
	}
	c1.Close() // the daemon dies
	<-done1

	c2, _ := connect(t, k)
	held, err := c2.Held()
	if err != nil || len(held) != 1 || string(held["db"]) != `{"mount":"/m"}` {
		t.Fatalf("Held = %q, %v", held, err)
	}
	state, files, err := c2.Take("db")
	if err != nil || string(state) != `{"mount":"/m"}` || len(files) != 1 {
		t.Fatalf("Take = %q, %d files, %v", state, len(files), err)
	}
	if _, err := files[0].Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(r, b); err != nil || b[0] != 'x' {
		t.Fatalf("the taken descriptor is not the held pipe: %q %v", b, err)
	}
	if _, _, err := c2.Take("nope"); err == nil || !strings.Contains(err.Error(), "nope is not held") {
		t.Fatalf("Take of an unknown name: %v", err)
	}
	if err := c2.Drop("db"); err != nil {
		t.Fatal(err)
	}
	files[0].Close()
	if open(t, r) {
		t.Fatal("still open after Drop and the taker's close")
	}
	if held, _ := c2.Held(); len(held) != 0 {
		t.Fatalf("Held after Drop = %q", held)
	}
	if err := c2.Hold("", nil); err == nil {
		t.Fatal("Hold without name or descriptors succeeded")
	}
}

// TestGrace: a volume whose daemon died stays held for the grace, then is
// released; one a new daemon took back stays held.
func TestGrace(t *testing.T) {
	const grace = 300 * time.Millisecond
	k := New(grace, quiet())
	defer k.Close()
	rLost, wLost := heldPipe(t)
	rKept, wKept := heldPipe(t)
	c1, done1 := connect(t, k)
	if err := c1.Hold("lost", nil, wLost); err != nil {
		t.Fatal(err)
	}
	if err := c1.Hold("kept", nil, wKept); err != nil {
		t.Fatal(err)
	}
	wLost.Close()
	wKept.Close()
	c1.Close()
	<-done1
	died := time.Now()

	c2, _ := connect(t, k)
	_, files, err := c2.Take("kept")
	if err != nil {
		t.Fatal(err)
	}
	files[0].Close() // the keeper's own copy must keep it open
	if !open(t, rLost) {
		t.Fatal("released before the grace")
	}
	time.Sleep(time.Until(died.Add(grace + 200*time.Millisecond)))
	if open(t, rLost) {
		t.Fatal("not released after the grace")
	}
	if !open(t, rKept) {
		t.Fatal("a volume the new daemon took back was released")
	}
	if held, _ := c2.Held(); len(held) != 1 || !has(held, "kept") {
		t.Fatalf("Held = %q, want only kept", held)
	}
}

// TestSupervisor: the child gets its end of the keeper socket as fd 3; it
// is not restarted when it fails before any child served, is restarted
// when it fails after, and gets SIGTERM when the supervisor stops.
func TestSupervisor(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	log := filepath.Join(t.TempDir(), "starts")
	script := `[ "$` + EnvFD + `" = 3 ] && [ -S /dev/fd/3 ] && echo ok >>"$1" || echo bad >>"$1"
[ $(wc -l <"$1") -ge 3 ] && exec sleep 60
exit 3`
	s := &Supervisor{Keeper: New(time.Second, quiet()), Log: quiet(), Backoff: 10 * time.Millisecond,
		Command: func() *exec.Cmd { return exec.Command("sh", "-c", script, "sh", log) }}
	// Before any child said it serves, a failing child is a start-up
	// error (a bad flag): no restart, its error returned.
	err := s.Run(context.Background())
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(err.Error(), "failed while starting") {
		t.Fatalf("Run with a child failing at start-up = %v, want its exit status 3", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "ok\n" {
		t.Fatalf("a child failing at start-up was started %q times", b)
	}
	os.Remove(log)
	s.Keeper = New(time.Second, quiet())
	s.Keeper.ready = true // as if a daemon had served: deaths are crashes now
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(log)
		if strings.Count(string(b), "\n") >= 3 {
			if string(b) != "ok\nok\nok\n" {
				t.Fatalf("children saw %q", b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not restarted twice in 10 s: %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("supervisor did not stop its child within 10 s")
	}

	// A child that exits with status 0 by itself ends the supervisor.
	s.Command = func() *exec.Cmd { return exec.Command("true") }
	if err := s.Run(context.Background()); err != nil {
		t.Fatalf("Run after a clean exit: %v", err)
	}

	// ... unless it left volumes held (stopped by a SIGTERM of its own):
	// the next child takes them over.
	os.Remove(log)
	s.Keeper = New(time.Minute, quiet())
	s.Keeper.ready = true
	_, w := heldPipe(t)
	s.Keeper.restore([]held{{Name: "db", Files: []*os.File{w}}})
	s.Command = func() *exec.Cmd {
		return exec.Command("sh", "-c", `echo x >>"$1"; [ $(wc -l <"$1") -ge 2 ] && exec sleep 60; exit 0`, "sh", log)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- s.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(log); string(b) == "x\nx\n" {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log)
			t.Fatalf("a child that exited 0 leaving a volume held was not restarted: starts %q", b)
		}
	}
	cancel()
	<-done
}

// TestFDStoreState: what Save hands systemd, restore takes back: each
// volume with its state and its own descriptors, whatever order systemd
// passes them in; a state naming a descriptor systemd did not pass loses
// that volume, not the others.
func TestFDStoreState(t *testing.T) {
	r1, w1 := heldPipe(t)
	_, w2 := heldPipe(t)
	state, err := json.Marshal([]storedVolume{
		{Name: "a", State: []byte("sa"), Fds: []string{"ballast-v0-0"}},
		{Name: "b", State: []byte("sb"), Fds: []string{"ballast-v1-0", "ballast-v1-1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mf, err := os.CreateTemp(t.TempDir(), "state")
	if err != nil {
		t.Fatal(err)
	}
	mf.Write(state)
	hs, err := restore([]*os.File{w2, mf, w1}, []string{"ballast-v1-0", stateName, "ballast-v0-0"})
	if len(hs) != 1 || hs[0].Name != "a" || string(hs[0].State) != "sa" || len(hs[0].Files) != 1 {
		t.Fatalf("restore = %+v", hs)
	}
	if err == nil || !strings.Contains(err.Error(), "ballast-v1-1 missing") {
		t.Fatalf("restore of b without its second descriptor: %v", err)
	}
	if _, err := hs[0].Files[0].Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(r1, b); err != nil || b[0] != 'y' {
		t.Fatalf("a got another descriptor than its own: %q %v", b, err)
	}
	hs[0].Files[0].Close()
}

// FuzzFDStoreState: whatever the state memfd holds, restore neither
// panics nor gives a volume without descriptors or one descriptor twice.
func FuzzFDStoreState(f *testing.F) {
	f.Add([]byte(`[{"name":"a","fds":["x"]},{"name":"b","fds":["x","y"]}]`))
	f.Add([]byte(`[{"name":"","fds":["x"]}]`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, state []byte) {
		mfd, err := unix.MemfdCreate("state", unix.MFD_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		files := []*os.File{os.NewFile(uintptr(mfd), "state")}
		for range 2 {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			files = append(files, w)
		}
		files[0].Write(state)
		hs, _ := restore(files, []string{stateName, "x", "y"})
		seen := map[*os.File]bool{}
		for _, h := range hs {
			if len(h.Files) == 0 || h.Name == "" {
				t.Fatalf("restored %+v", h)
			}
			for _, fl := range h.Files {
				if seen[fl] {
					t.Fatalf("descriptor %s given twice", fl.Name())
				}
				seen[fl] = true
				fl.Close()
			}
		}
	})
}

func has(m map[string][]byte, k string) bool { _, ok := m[k]; return ok }

// FuzzMessage: whatever a datagram holds, the keeper answers it without
// panicking, never holds a volume without descriptors, and a name it
// reports as dropped is gone.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{`{"op":"hold","name":"db"}`, `{"op":"take","name":"db"}`, `{"op":"drop","name":"db"}`,
		`{"op":"list"}`, `{"op":"what"}`, `{`, ``, `{"op":"take","name":""}`, `{"held":{"a":"AA=="}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(pair[0])
		defer unix.Close(pair[1])
		if len(b) > maxMessage {
			b = b[:maxMessage]
		}
		if err := unix.Sendmsg(pair[0], b, nil, nil, 0); err != nil {
			t.Skip(err)
		}
		m, files, err := recv(pair[1])
		if err != nil {
			return
		}
		k := New(time.Minute, quiet())
		defer k.Close()
		ans, out := k.handle(1, m, files)
		closeAll(out)
		if m.Op == "hold" && ans.Err == "" {
			t.Fatalf("held %q without descriptors", m.Name)
		}
		if len(k.Names()) != 0 {
			t.Fatalf("something is held after %q: %v", b, k.Names())
		}
	})
}
