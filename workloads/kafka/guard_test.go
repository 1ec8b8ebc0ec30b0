package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func startGuarded(t *testing.T, cfg Config) *Broker {
	t.Helper()
	cfg.Dir = t.TempDir()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	b, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectClosed checks the broker closes c promptly, without answering.
func expectClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 64))
	var ne net.Error
	switch {
	case n > 0:
		t.Errorf("%s: broker answered %d bytes, want the connection closed", what, n)
	case errors.As(err, &ne) && ne.Timeout():
		t.Errorf("%s: connection still open after 5s", what)
	case err == nil:
		t.Errorf("%s: no error reading", what)
	}
}

// produceConsume writes records to a fresh topic with franz-go and reads
// them back, on connections of its own.
func produceConsume(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topic := fmt.Sprintf("guard-%d", time.Now().UnixNano())
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic), kgo.ConsumeTopics(topic),
		kgo.AllowAutoTopicCreation(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 500
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "v%d", i)})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(seen), n, err)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Fatalf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
}

// apiVersionsFrame is an ApiVersions request of the given version with an
// arbitrary body (a broker must not parse the body of a version it does
// not know).
func apiVersionsFrame(version int16, corr int32, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(10+len(body)))
	b = binary.BigEndian.AppendUint16(b, apiVersionsKey)
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = append(b, 0xff, 0xff) // null client id
	return append(b, body...)
}

// readApiVersions reads an ApiVersions response of the given version.
func readApiVersions(t *testing.T, c net.Conn, corr int32, version int16) *kmsg.ApiVersionsResponse {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatalf("reading ApiVersions response (corr %d): %v", corr, err)
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if got := int32(binary.BigEndian.Uint32(buf)); got != corr {
		t.Fatalf("response correlation id %d, want %d", got, corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = version
	if err := resp.ReadFrom(buf[4:]); err != nil {
		t.Fatalf("ApiVersions v%d response: %v", version, err)
	}
	return resp
}

// TestGuardUnknownAPIKey sends the 14-byte request that made kfake panic
// (API key 999, and -1): the broker closes that connection and keeps
// serving everyone else. Without the guard the test binary dies.
func TestGuardUnknownAPIKey(t *testing.T) {
	b := startGuarded(t, Config{})
	for _, tc := range []struct{ name, hex string }{
		{"key 999", "0000000a03e7000000000007ffff"},
		{"key -1", "0000000affff000000000007ffff"},
		// A key the broker does not serve, known to kmsg (LeaderAndIsr).
		{"key 4", "0000000a0004000000000007ffff"},
		// A served key (Metadata) at a version it does not serve.
		{"metadata v999", "0000000a000303e700000007ffff"},
		{"metadata v-1", "0000000a0003ffff00000007ffff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			c := dial(t, b.Addr())
			if _, err := c.Write(pkt); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c, tc.name)
			produceConsume(t, b.Addr())
		})
	}
	if got := b.guard.refused.Load(); got != 5 {
		t.Errorf("guard refused %d requests, want 5", got)
	}
}

// TestGuardOversizedRequest: connections claiming 1 GiB (or a negative
// size, which kfake reads as 4 GiB) are closed at once and nothing near
// that is allocated.
func TestGuardOversizedRequest(t *testing.T) {
	b := startGuarded(t, Config{})
	claims := []struct {
		name string
		pkt  []byte
	}{
		{"1GiB size only", binary.BigEndian.AppendUint32(nil, 1<<30)},
		{"1GiB metadata", hexBytes(t, "400000000003000c00000001ffff")},
		{"1GiB apiversions", hexBytes(t, "400000000012000000000001ffff")},
		{"1GiB produce", hexBytes(t, "400000000000000900000001ffff")},
		{"negative", hexBytes(t, "ffffffff0012000000000001ffff")},
		{"min int32", hexBytes(t, "800000000012000000000001ffff")},
		{"100MiB+1", binary.BigEndian.AppendUint32(nil, DefaultMaxRequestBytes+1)},
		{"too small", hexBytes(t, "000000090012000000000001ff")},
		{"empty", hexBytes(t, "00000000")},
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var conns []net.Conn
	for _, cl := range claims {
		c := dial(t, b.Addr())
		if _, err := c.Write(cl.pkt); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		expectClosed(t, c, claims[i].name)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("%d claims of up to 4 GiB allocated %d MiB", len(claims), grew>>20)
	}
	produceConsume(t, b.Addr())
}

// A lower --max-request-bytes is applied; a request at the limit passes.
func TestGuardMaxRequestBytes(t *testing.T) {
	const limit = 4096
	b := startGuarded(t, Config{MaxRequestBytes: limit})
	c := dial(t, b.Addr())
	c.Write(apiVersionsFrame(0, 1, make([]byte, limit+1-10)))
	expectClosed(t, c, "limit+1")

	// ApiVersions v0 has no fields: kfake ignores the padding.
	c = dial(t, b.Addr())
	c.Write(apiVersionsFrame(0, 2, make([]byte, limit-10)))
	if resp := readApiVersions(t, c, 2, 0); resp.ErrorCode != 0 || len(resp.ApiKeys) < 10 {
		t.Fatalf("ApiVersions at the limit: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	for _, bad := range []int{-1, 9} {
		if _, err := Start(Config{Dir: t.TempDir(), Listen: "127.0.0.1:0", MaxRequestBytes: bad}); err == nil {
			t.Errorf("MaxRequestBytes %d: no error", bad)
		}
	}
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestGuardApiVersionsTooNew: an ApiVersions request newer than the broker
// serves gets what Apache Kafka answers (a v0 response with
// UNSUPPORTED_VERSION and the ApiVersions range), in order with the
// requests around it, and the connection stays open for the retry.
func TestGuardApiVersionsTooNew(t *testing.T) {
	b := startGuarded(t, Config{})
	c := dial(t, b.Addr())

	v3 := kmsg.NewPtrApiVersionsRequest()
	v3.Version = 3
	v3.ClientSoftwareName, v3.ClientSoftwareVersion = "ballast-test", "1"
	var pipelined []byte
	pipelined = appendRequest(pipelined, v3, 1)
	pipelined = append(pipelined, apiVersionsFrame(99, 2, bytes.Repeat([]byte{0xee}, 300))...)
	pipelined = append(pipelined, apiVersionsFrame(-1, 3, nil)...)
	pipelined = append(pipelined, apiVersionsFrame(math.MaxInt16, 4, []byte{0})...)
	pipelined = append(pipelined, apiVersionsFrame(0, 5, nil)...)
	if _, err := c.Write(pipelined); err != nil {
		t.Fatal(err)
	}

	full := readApiVersions(t, c, 1, 3)
	if full.ErrorCode != 0 || len(full.ApiKeys) < 10 {
		t.Fatalf("ApiVersions v3: error %d, %d keys", full.ErrorCode, len(full.ApiKeys))
	}
	var want kmsg.ApiVersionsResponseApiKey
	for _, k := range full.ApiKeys {
		if k.ApiKey == apiVersionsKey {
			want = k
		}
	}
	for corr := int32(2); corr <= 4; corr++ {
		resp := readApiVersions(t, c, corr, 0)
		if resp.ErrorCode != kerr.UnsupportedVersion.Code {
			t.Errorf("corr %d: error code %d, want %d (UNSUPPORTED_VERSION)", corr, resp.ErrorCode, kerr.UnsupportedVersion.Code)
		}
		if len(resp.ApiKeys) != 1 || resp.ApiKeys[0].ApiKey != apiVersionsKey ||
			resp.ApiKeys[0].MinVersion != want.MinVersion || resp.ApiKeys[0].MaxVersion != want.MaxVersion {
			t.Errorf("corr %d: keys %+v, want only ApiVersions %d-%d", corr, resp.ApiKeys, want.MinVersion, want.MaxVersion)
		}
	}
	if resp := readApiVersions(t, c, 5, 0); resp.ErrorCode != 0 || len(resp.ApiKeys) != len(full.ApiKeys) {
		t.Errorf("ApiVersions v0 after the downgrade: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
}

// TestGuardProduceConsume: clients work through the guard, which saw
// their requests and refused none.
func TestGuardProduceConsume(t *testing.T) {
	b := startGuarded(t, Config{})
	produceConsume(t, b.Addr())
	if b.guard.forwarded.Load() == 0 {
		t.Error("no request went through the guard")
	}
	if n := b.guard.refused.Load(); n != 0 {
		t.Errorf("guard refused %d requests of a well-behaved client", n)
	}
}

// FuzzGuard walks arbitrary bytes as a request stream through decide and
// checks each decision against its definition, then feeds the same bytes
// through a guardConn and checks it hands on exactly the requests decide
// let through.
func FuzzGuard(f *testing.F) {
	apis := apiTable{}
	for k := int16(0); k < 100; k++ {
		if r := kmsg.RequestForKey(k); r != nil && k != 4 {
			apis[k] = versionRange{0, r.MaxVersion()}
		}
	}
	apis[17] = versionRange{1, 1} // SASLHandshake: v0 not served
	apis[apiVersionsKey] = versionRange{0, 4}
	v3 := kmsg.NewPtrApiVersionsRequest()
	v3.Version = 3
	for _, s := range []string{
		"0000000a03e7000000000007ffff",
		"0000000affff000000000007ffff",
		"400000000003000c00000001ffff",
		"ffffffff0012000000000001ffff",
		"0000000a0012006300000002ffff0000000a0012000000000003ffff",
		"0000000a0011000000000002ffff",
		"00000000",
		"0000",
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b, uint32(DefaultMaxRequestBytes))
	}
	f.Add(appendRequest(appendRequest(nil, v3, 1), v3, 2), uint32(30))
	f.Fuzz(func(t *testing.T, data []byte, maxArg uint32) {
		maxSize := int32(maxArg%(math.MaxInt32-minRequestSize+1)) + minRequestSize

		var want []byte
		wantErr := error(nil)
		rest := data
		for {
			h, ok := parseHeader(rest)
			if len(rest) >= 4 && !sizeOK(int32(binary.BigEndian.Uint32(rest)), maxSize) {
				if ok && decide(h, maxSize, apis) != closeSize {
					t.Fatalf("size %d refused from its prefix but not by decide", h.Size)
				}
				wantErr = errRefused
				break
			}
			if !ok {
				break
			}
			v := decide(h, maxSize, apis)
			if v2 := decide(h, maxSize, apis); v2 != v {
				t.Fatalf("decide(%+v) gave %v then %v", h, v, v2)
			}
			r, served := apis[h.Key]
			inRange := served && h.Version >= r.Min && h.Version <= r.Max
			switch v {
			case forward:
				if !sizeOK(h.Size, maxSize) || !inRange {
					t.Fatalf("forwarded %+v (max %d)", h, maxSize)
				}
			case closeKey:
				if served {
					t.Fatalf("closed on served key: %+v", h)
				}
			case closeVersion:
				if !served || inRange || h.Key == apiVersionsKey {
					t.Fatalf("closed on version: %+v", h)
				}
			case unsupportedApiVersions:
				if h.Key != apiVersionsKey || inRange {
					t.Fatalf("ApiVersions downgrade of %+v", h)
				}
			default:
				t.Fatalf("verdict %v for %+v", v, h)
			}
			if v != forward && v != unsupportedApiVersions {
				wantErr = errRefused
				break
			}
			end := 4 + int64(h.Size)
			if int64(len(rest)) < end {
				if v == forward {
					want = append(want, rest...)
				}
				break
			}
			if v == forward {
				want = append(want, rest[:end]...)
			} else {
				want = append(want, unsupportedApiVersionsRequest(apis, h.Corr)...)
			}
			rest = rest[end:]
		}

		g := newGuard(maxSize, slogDiscard)
		g.setAPIs(apis)
		c := &guardConn{Conn: streamConn{Reader: bytes.NewReader(data)}, g: g}
		got, err := io.ReadAll(c)
		if !bytes.Equal(got, want) {
			t.Fatalf("guard passed on %x, want %x", got, want)
		}
		if wantErr != nil && !errors.Is(err, wantErr) {
			t.Fatalf("guard ended with %v, want %v", err, wantErr)
		}
		if wantErr == nil && err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("guard ended with %v", err)
		}
	})
}

// streamConn is a net.Conn reading from a byte stream.
type streamConn struct {
	io.Reader
	net.Conn
}

func (s streamConn) Read(p []byte) (int, error) { return s.Reader.Read(p) }
func (streamConn) RemoteAddr() net.Addr         { return namedAddr("fuzz:0") }

var slogDiscard = slog.New(slog.DiscardHandler)
