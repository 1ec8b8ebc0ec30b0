package remote

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/block"
)

// TestOtherVersionRefused: a server answers the Hello of a client of
// another protocol version with an error that client can read, naming both
// versions, and serves it nothing.
func TestOtherVersionRefused(t *testing.T) {
	_, r := newReplica(t, "v", 1<<20)
	_, addr, logs := serve(t, secret, only("v", r))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := authClient(conn, secret); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, HeaderSize)
	hello := &Frame{Op: OpHello, ID: 77, Epoch: 1, ReplicaID: "v"}
	encodeHeaderAs(hdr, hello, 1)
	if _, err := conn.Write(append(hdr, hello.ReplicaID...)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, hdr); err != nil {
		t.Fatal(err)
	}
	if hdr[2] != 1 || Status(hdr[4]) != StatusError || binary.BigEndian.Uint64(hdr[8:]) != 77 {
		t.Fatalf("answer: version %d, status %d, id %d", hdr[2], hdr[4], binary.BigEndian.Uint64(hdr[8:]))
	}
	msg := make([]byte, binary.BigEndian.Uint32(hdr[40:]))
	if _, err := io.ReadFull(conn, msg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg), "speaks replica protocol version 1, this node 2") {
		t.Fatalf("answer %q does not name both versions", msg)
	}
	if n, err := conn.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatal("connection left open after the refusal")
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "refused a client") })
	// Nothing was written.
	buf := make([]byte, block.Size)
	if _, err := r.ReadAt(buf, 0); err != nil || !bytes.Equal(buf, make([]byte, block.Size)) {
		t.Fatalf("replica touched: %v", err)
	}
}

// TestClosedAtHello: a client whose Hello the server answers by closing
// the connection, as a server of an older version does, says it may be
// one.
func TestClosedAtHello(t *testing.T) {
	addr := acceptOnce(t, func(conn net.Conn) {
		if _, err := authServer(conn, secret); err == nil {
			ReadFrame(conn) // a version 1 server refuses version 2 frames so
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, addr, secret, "v", 1)
	if err == nil || !strings.Contains(err.Error(), "another replica protocol") {
		t.Fatalf("dial of a server that closes at hello: %v", err)
	}
}

// acceptOnce listens on a loopback port until the test ends and hands the
// first connection to serve, closing it after; it returns the address.
func acceptOnce(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		serve(conn)
	}()
	return ln.Addr().String()
}
