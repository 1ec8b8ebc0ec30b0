package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/testenv"
)

// targets runs fn on a directory target and on an S3 target (versitygw,
// started for the test).
func targets(t *testing.T, fn func(t *testing.T, tg Target)) {
	t.Run("file", func(t *testing.T) {
		d, err := OpenDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		fn(t, d)
	})
	t.Run("s3", func(t *testing.T) {
		fn(t, openTestS3(t, "backups/ci"))
	})
}

func openTestS3(t *testing.T, prefix string) *S3 {
	srv := testenv.StartS3(t, "ballast-test")
	cfg := Config{URL: "s3://ballast-test/" + prefix, Endpoint: srv.Endpoint, Insecure: true}
	tg, err := Open(cfg, Credentials{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	s := tg.(*S3)
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

// image is a volume's content in memory, readable and writable at offsets.
type image []byte

func (m image) ReadAt(p []byte, off int64) (int, error)  { return copy(p, m[off:]), nil }
func (m image) WriteAt(p []byte, off int64) (int, error) { return copy(m[off:], p), nil }

func randomInto(t testing.TB, m image, off, n int64) {
	if _, err := rand.Read(m[off : off+n]); err != nil {
		t.Fatal(err)
	}
}

// changedChunks answers Changed for the chunks overlapping the ranges.
func changedChunks(ranges ...[2]int64) func(int) bool {
	set := map[int]bool{}
	for _, r := range ranges {
		for c := r[0] / ChunkSize; c*ChunkSize < r[0]+r[1]; c++ {
			set[int(c)] = true
		}
	}
	return func(i int) bool { return set[i] }
}

func restoreSum(t *testing.T, tg Target, id string, size int64) [32]byte {
	t.Helper()
	m, err := Get(context.Background(), tg, id)
	if err != nil {
		t.Fatal(err)
	}
	dst := make(image, size)
	if err := Restore(context.Background(), tg, m, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(dst)
}

// TestFullIncrementalRestoreDelete: a full backup and an incremental one
// restore byte-identical to their images, the older one too after the
// newer; the incremental uploads about what changed; deleting the older
// keeps the chunks the newer uses, and deleting both leaves no chunk.
func TestFullIncrementalRestoreDelete(t *testing.T) {
	targets(t, func(t *testing.T, tg Target) {
		ctx := context.Background()
		const size = 64 << 20
		img := make(image, size)
		randomInto(t, img, 0, 24<<20) // 12 chunks written, 20 zero
		sum1 := sha256.Sum256(img)
		var last Progress
		m1, err := Create(ctx, tg, img, size, Options{ID: "b1", Volume: "v", Snapshot: "s1", Progress: func(p Progress) { last = p }})
		if err != nil {
			t.Fatal(err)
		}
		if last.Done != size || last.Total != size {
			t.Errorf("last progress %+v, want done = total = %d", last, size)
		}
		if m1.Uploaded < 24<<20 || m1.Uploaded > 25<<20 {
			t.Errorf("full backup uploaded %d bytes, want about %d (random data, zeros skipped)", m1.Uploaded, 24<<20)
		}
		if n := countChunks(t, tg); n != 12 {
			t.Errorf("target holds %d chunks, want 12", n)
		}

		// 3 MiB changed across a chunk boundary, and a block in chunk 20.
		randomInto(t, img, 5<<20, 3<<20)
		randomInto(t, img, 40<<20, 4096)
		sum2 := sha256.Sum256(img)
		m2, err := Create(ctx, tg, img, size, Options{ID: "b2", Volume: "v", Snapshot: "s2", Parent: m1,
			Changed: changedChunks([2]int64{5 << 20, 3 << 20}, [2]int64{40 << 20, 4096})})
		if err != nil {
			t.Fatal(err)
		}
		if m2.Parent != "b1" {
			t.Errorf("parent %q, want b1", m2.Parent)
		}
		// Chunks 2, 3 and 20 changed: 4 MiB random plus a mostly-zero chunk.
		if m2.Uploaded > 5<<20 || m2.Uploaded < 4<<20 {
			t.Errorf("incremental backup uploaded %d bytes, want about 4 MiB", m2.Uploaded)
		}
		if got := restoreSum(t, tg, "b2", size); got != sum2 {
			t.Error("restore of b2 differs from the image it was taken of")
		}
		if got := restoreSum(t, tg, "b1", size); got != sum1 {
			t.Error("restore of b1, after b2, differs from the image it was taken of")
		}
		list, err := List(ctx, tg)
		if err != nil || len(list) != 2 || list[0].ID != "b1" || list[1].ID != "b2" {
			t.Fatalf("list: %v, %v", list, err)
		}

		if _, err := Delete(ctx, tg, "b1"); err != nil {
			t.Fatal(err)
		}
		if got := restoreSum(t, tg, "b2", size); got != sum2 {
			t.Error("restore of b2 after deleting b1 differs")
		}
		if _, err := Get(ctx, tg, "b1"); !errors.Is(err, ErrNotExist) {
			t.Errorf("b1 after delete: %v, want ErrNotExist", err)
		}
		if _, err := Delete(ctx, tg, "b2"); err != nil {
			t.Fatal(err)
		}
		if n := countChunks(t, tg); n != 0 {
			t.Errorf("%d chunks left after deleting every backup", n)
		}
	})
}

func countChunks(t *testing.T, tg Target) int {
	t.Helper()
	have, err := storedChunks(context.Background(), tg)
	if err != nil {
		t.Fatal(err)
	}
	return len(have)
}

// failAfter is a target whose Puts of chunks fail after n succeed.
type failAfter struct {
	Target
	n atomic.Int64
}

var errInjected = errors.New("injected upload failure")

func (f *failAfter) Put(ctx context.Context, key string, data []byte) error {
	if strings.HasPrefix(key, "chunks/") && f.n.Add(-1) < 0 {
		return errInjected
	}
	return f.Target.Put(ctx, key, data)
}

// TestInterruptedResumes: a backup whose upload fails midway leaves no
// manifest, and its run again uploads only the chunks that were missing.
func TestInterruptedResumes(t *testing.T) {
	targets(t, func(t *testing.T, tg Target) {
		ctx := context.Background()
		const size = 32 << 20
		img := make(image, size)
		randomInto(t, img, 0, size)
		f := &failAfter{Target: tg}
		f.n.Store(5)
		_, err := Create(ctx, f, img, size, Options{ID: "b1", Volume: "v", Workers: 1})
		if !errors.Is(err, errInjected) {
			t.Fatalf("interrupted backup: %v, want the injected failure", err)
		}
		if _, err := Get(ctx, tg, "b1"); !errors.Is(err, ErrNotExist) {
			t.Fatalf("manifest of the interrupted backup: %v, want none", err)
		}
		if n := countChunks(t, tg); n != 5 {
			t.Fatalf("%d chunks uploaded before the failure, want 5", n)
		}
		m, err := Create(ctx, tg, img, size, Options{ID: "b1", Volume: "v"})
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(11 * ChunkSize); m.Uploaded < want || m.Uploaded > want+want/10 {
			t.Errorf("resumed backup uploaded %d bytes, want about %d (11 of 16 chunks)", m.Uploaded, want)
		}
		if restoreSum(t, tg, "b1", size) != sha256.Sum256(img) {
			t.Error("restore of the resumed backup differs")
		}
	})
}

// TestCorruptChunk: a chunk changed in the target fails the restore with
// an error naming the chunk, for a flipped byte and for a truncation.
func TestCorruptChunk(t *testing.T) {
	targets(t, func(t *testing.T, tg Target) {
		ctx := context.Background()
		const size = 8 << 20
		img := make(image, size)
		randomInto(t, img, 0, size)
		m, err := Create(ctx, tg, img, size, Options{ID: "b1", Volume: "v"})
		if err != nil {
			t.Fatal(err)
		}
		key := chunkKey(m.Chunks[2])
		good, err := tg.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		for name, bad := range map[string][]byte{
			"flipped":   append(append([]byte{}, good[:100]...), append([]byte{good[100] ^ 1}, good[101:]...)...),
			"truncated": good[:len(good)/2],
			"header":    append([]byte("NOTACHNK"), good[8:]...),
		} {
			if err := tg.Put(ctx, key, bad); err != nil {
				t.Fatal(err)
			}
			err := Restore(ctx, tg, m, make(image, size), RestoreOptions{})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk 2") || !strings.Contains(err.Error(), m.Chunks[2]) {
				t.Errorf("%s chunk: restore error %v, want ErrCorrupt naming chunk 2 and its address", name, err)
			}
		}
		if err := tg.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		err = Restore(ctx, tg, m, make(image, size), RestoreOptions{})
		if !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "chunk 2") {
			t.Errorf("missing chunk: restore error %v, want ErrNotExist naming chunk 2", err)
		}
	})
}

// TestWrongCredentials: an S3 target with a wrong secret key is refused
// with ErrDenied, on a read and on a write.
func TestWrongCredentials(t *testing.T) {
	srv := testenv.StartS3(t, "ballast-test")
	tg, err := Open(Config{URL: "s3://ballast-test/x", Endpoint: srv.Endpoint, Insecure: true},
		Credentials{AccessKey: srv.AccessKey, SecretKey: "wrong-" + srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := tg.List(ctx, "backups/"); !errors.Is(err, ErrDenied) {
		t.Errorf("list with a wrong key: %v, want ErrDenied", err)
	}
	if err := tg.Put(ctx, "backups/x.json", []byte("{}")); !errors.Is(err, ErrDenied) {
		t.Errorf("put with a wrong key: %v, want ErrDenied", err)
	}
	if err := tg.Check(ctx); !errors.Is(err, ErrDenied) {
		t.Errorf("check with a wrong key: %v, want ErrDenied", err)
	}
}

// TestRateLimit: an upload limited to 4 MiB/s of 16 MiB of random data
// takes at least the 3 s the limit allows beyond its 4 MiB burst (a lower
// bound: a slow machine only makes it longer).
func TestRateLimit(t *testing.T) {
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const size = 16 << 20
	img := make(image, size)
	randomInto(t, img, 0, size)
	start := time.Now()
	if _, err := Create(context.Background(), d, img, size, Options{ID: "b1", Volume: "v", RateLimit: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 2900*time.Millisecond {
		t.Errorf("16 MiB at 4 MiB/s took %v, want at least 3 s", took)
	}
}

// TestSameContentOnce: chunks of equal content are stored once.
func TestSameContentOnce(t *testing.T) {
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const size = 16 << 20
	img := make(image, size)
	randomInto(t, img, 0, ChunkSize)
	for off := int64(ChunkSize); off < size; off += ChunkSize {
		copy(img[off:], img[:ChunkSize])
	}
	m, err := Create(context.Background(), d, img, size, Options{ID: "b1", Volume: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if n := countChunks(t, d); n != 1 {
		t.Errorf("%d chunks stored for 8 equal ones, want 1", n)
	}
	if m.Uploaded > ChunkSize+ChunkSize/10 {
		t.Errorf("uploaded %d bytes, want one chunk", m.Uploaded)
	}
}

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Location
		err  string
	}{
		{in: "s3://bucket/pre/fix", want: Location{Scheme: "s3", Bucket: "bucket", Prefix: "pre/fix"}},
		{in: "s3://my-bucket", want: Location{Scheme: "s3", Bucket: "my-bucket"}},
		{in: "file:///var/backups", want: Location{Scheme: "file", Prefix: "/var/backups"}},
		{in: "s3://B/x", err: "not an S3 bucket name"},
		{in: "s3://bucket/a/../b", err: "not a clean path"},
		{in: "s3://key:secret@bucket/x", err: "credentials go in"},
		{in: "file://host/x", err: "on this host"},
		{in: "file:///", err: "other than /"},
		{in: "file://relative", err: "on this host"},
		{in: "/var/backups", err: "no scheme"},
		{in: "gs://bucket", err: `scheme "gs"`},
	} {
		got, err := ParseURL(c.in)
		if c.err != "" {
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseURL(%q) = %v, want ErrInvalid saying %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func TestParseCredentials(t *testing.T) {
	aws := "# comment\n[default]\naws_access_key_id = AK\naws_secret_access_key=SK\n[other]\naws_access_key_id = X\n"
	if c, err := ParseCredentials([]byte(aws)); err != nil || c != (Credentials{"AK", "SK"}) {
		t.Errorf("AWS form: %+v, %v", c, err)
	}
	if c, err := ParseCredentials([]byte("access_key=a\nsecret_key=b\n")); err != nil || c != (Credentials{"a", "b"}) {
		t.Errorf("short form: %+v, %v", c, err)
	}
	for in, want := range map[string]string{
		"access_key=a\n":           "need both",
		"access_key a\n":           "want key = value",
		"[default\naccess_key=a\n": "unclosed section",
		"token=x\n":                "unknown key",
	} {
		if _, err := ParseCredentials([]byte(in)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCredentials(%q) = %v, want ErrInvalid saying %q", in, err, want)
		}
	}
}

func TestManifestChecks(t *testing.T) {
	good := `{"format":1,"id":"b1","size":4194304,"chunk_size":2097152,"chunks":["","` + strings.Repeat("ab", 32) + `"]}`
	if _, err := ParseManifest([]byte(good)); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	for name, bad := range map[string]string{
		"format":      strings.Replace(good, `"format":1`, `"format":9`, 1),
		"id":          strings.Replace(good, `"b1"`, `"../x"`, 1),
		"chunk count": strings.Replace(good, `"chunks":["",`, `"chunks":[`, 1),
		"address":     strings.Replace(good, "abab", "zzzz", 1),
		"size":        strings.Replace(good, "4194304", "4194305", 1),
		"json":        good[:20],
	} {
		if _, err := ParseManifest([]byte(bad)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"s3://bucket/prefix", "file:///dir", "s3://a@b/c?d#e", "file://x/../y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loc, err := ParseURL(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if loc.Scheme == "file" && !strings.HasPrefix(loc.Prefix, "/") {
			t.Fatalf("file target %q is not absolute", loc.Prefix)
		}
		if strings.Contains(loc.Prefix, "..") && loc.Scheme == "s3" && strings.Contains("/"+loc.Prefix+"/", "/../") {
			t.Fatalf("s3 prefix %q climbs", loc.Prefix)
		}
	})
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte("[default]\naws_access_key_id=a\naws_secret_access_key=b\n"))
	f.Add([]byte("access_key=a\nsecret_key=b"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCredentials(b)
		if err == nil && (c.AccessKey == "" || c.SecretKey == "") {
			t.Fatalf("accepted incomplete credentials %+v", c)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"format":1,"id":"b1","size":4096,"chunk_size":2097152,"chunks":[""]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil || m.Size > 64<<20 {
			return
		}
		// An accepted manifest restores without panicking or writing
		// outside its size.
		dst := make(image, m.Size)
		_ = Restore(context.Background(), emptyTarget{}, m, dst, RestoreOptions{Workers: 1})
	})
}

// emptyTarget holds nothing.
type emptyTarget struct{}

func (emptyTarget) Put(context.Context, string, []byte) error { return nil }
func (emptyTarget) Get(_ context.Context, k string) ([]byte, error) {
	return nil, fmt.Errorf("%s: %w", k, ErrNotExist)
}
func (emptyTarget) Delete(context.Context, string) error           { return nil }
func (emptyTarget) List(context.Context, string) ([]string, error) { return nil, nil }
func (emptyTarget) String() string                                 { return "empty" }
func (emptyTarget) Check(context.Context) error                    { return nil }

func TestChunkRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("ballast "), 4096)
	addr := Address(data)
	got, err := decodeChunk(encodeChunk(data), addr)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := decodeChunk(encodeChunk(data), Address([]byte("other"))); !errors.Is(err, ErrCorrupt) {
		t.Errorf("wrong address: %v, want ErrCorrupt", err)
	}
}

// collectsDuring is a target from which chunk victim vanishes (a
// collection) between a backup's first listing of chunks and its last.
type collectsDuring struct {
	Target
	victim string
	lists  int
}

func (c *collectsDuring) List(ctx context.Context, prefix string) ([]string, error) {
	if prefix == "chunks/" {
		if c.lists++; c.lists == 2 {
			if err := c.Target.Delete(ctx, chunkKey(c.victim)); err != nil {
				return nil, err
			}
		}
	}
	return c.Target.List(ctx, prefix)
}

// TestChunkCollectedDuringBackup: a backup that counts on a chunk the
// target held, which leaves it before the manifest is written, fails
// and writes no manifest that could not be restored.
func TestChunkCollectedDuringBackup(t *testing.T) {
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const size = 8 << 20
	img := make(image, size)
	randomInto(t, img, 0, size)
	m1, err := Create(ctx, d, img, size, Options{ID: "b1", Volume: "v"})
	if err != nil {
		t.Fatal(err)
	}
	tg := &collectsDuring{Target: d, victim: m1.Chunks[1]}
	_, err = Create(ctx, tg, img, size, Options{ID: "b2", Volume: "v"})
	if !errors.Is(err, ErrNotExist) || !strings.Contains(err.Error(), "chunk 1") {
		t.Fatalf("backup whose chunk was collected under it: %v, want ErrNotExist naming chunk 1", err)
	}
	if _, err := Get(ctx, d, "b2"); !errors.Is(err, ErrNotExist) {
		t.Errorf("manifest of the failed backup: %v, want none", err)
	}
}
