package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
	"github.com/ballast-io/ballast/pool/clusterca"
)

// tapProxy forwards connections to addr and keeps every byte that goes
// from the client to the server.
type tapProxy struct {
	mu   sync.Mutex
	seen bytes.Buffer
}

func (p *tapProxy) start(t *testing.T, addr string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			go func() { io.Copy(c, s); c.Close() }()
			go func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						p.mu.Lock()
						p.seen.Write(buf[:n])
						p.mu.Unlock()
						s.Write(buf[:n])
					}
					if err != nil {
						s.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func (p *tapProxy) saw(b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.seen.Bytes(), b)
}

// TestTLS: over TLS with the cluster's certificates the replica works and
// nothing written crosses the wire in clear (the same tap sees it in clear
// on a connection without TLS); a server that takes TLS only refuses a
// client in clear, and one of another cluster.
func TestTLS(t *testing.T) {
	srvTLS, cliTLS, err := clusterca.MutualTLS(secret, "server")
	if err != nil {
		t.Fatal(err)
	}
	_, r := newReplica(t, "v", 1<<20)
	srv, addr, logs := serve(t, secret, only("v", r))
	srv.UseTLS(srvTLS, true)
	marker := bytes.Repeat([]byte("REPLICA-PLAINTEXT-"), block.Size/18+1)[:block.Size]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, useTLS := range []bool{true, false} {
		tap := &tapProxy{}
		d := Dialer{}
		if useTLS {
			d.TLS = cliTLS
		}
		c, err := d.Dial(ctx, tap.start(t, addr), secret, "v", 1)
		if err != nil {
			t.Fatalf("TLS %v: %v", useTLS, err)
		}
		if _, err := c.WriteAt(marker, 0); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, block.Size)
		if _, err := c.ReadAt(got, 0); err != nil || !bytes.Equal(got, marker) {
			t.Fatalf("TLS %v: read back: %v", useTLS, err)
		}
		c.Close()
		if tap.saw([]byte("REPLICA-PLAINTEXT")) == useTLS {
			t.Fatalf("TLS %v: the tap saw the data in clear: %v", useTLS, !useTLS)
		}
	}

	srv.UseTLS(srvTLS, false)
	if _, err := Dial(ctx, addr, secret, "v", 1); err == nil || !strings.Contains(err.Error(), "TLS only") {
		t.Fatalf("a client in clear to a TLS-only server: %v", err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "takes replica connections over TLS only") })
	_, otherTLS, err := clusterca.MutualTLS([]byte("another cluster's secret 00000"), "intruder")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Dialer{TLS: otherTLS}).Dial(ctx, addr, secret, "v", 1); !errors.Is(err, ErrAuth) {
		t.Fatalf("a client of another cluster: %v, want ErrAuth", err)
	}
	srv.UseTLS(nil, false)
	if _, err := (&Dialer{TLS: cliTLS}).Dial(ctx, addr, secret, "v", 1); !errors.Is(err, ErrAuth) {
		t.Fatalf("a TLS client to a server without TLS: %v, want ErrAuth", err)
	}
}
