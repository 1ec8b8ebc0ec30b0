package crypt

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/ballast-io/ballast/pool/block"
	"golang.org/x/crypto/xts"
)

func testKey(t testing.TB) []byte {
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// pattern is a block whose plaintext is easy to spot.
var pattern = bytes.Repeat([]byte("PLAINTEXT-PATTERN-"), block.Size/18+1)[:block.Size]

// TestRoundTrip: what is written reads back; under the device there is
// only ciphertext, different for the same block at two places; a block
// never written reads as zeros.
func TestRoundTrip(t *testing.T) {
	mem := block.NewMem(1 << 20)
	d, err := New(mem, testKey(t))
	if err != nil {
		t.Fatal(err)
	}
	two := append(append([]byte(nil), pattern...), pattern...)
	if _, err := d.WriteAt(two, 8*block.Size); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(two[:block.Size], pattern) {
		t.Fatal("WriteAt changed the caller's buffer")
	}
	got := make([]byte, 3*block.Size)
	if _, err := d.ReadAt(got, 7*block.Size); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:block.Size], make([]byte, block.Size)) {
		t.Fatal("a block never written does not read as zeros")
	}
	if !bytes.Equal(got[block.Size:], two) {
		t.Fatal("read back other data")
	}
	raw := make([]byte, mem.Size())
	if _, err := mem.ReadAt(raw, 0); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("PLAINTEXT-PATTERN")) {
		t.Fatal("plaintext under the encrypted device")
	}
	if bytes.Equal(raw[8*block.Size:9*block.Size], raw[9*block.Size:10*block.Size]) {
		t.Fatal("the same block at two places has the same ciphertext")
	}
	// Zeros written are encrypted too.
	if _, err := d.WriteAt(make([]byte, block.Size), 0); err != nil {
		t.Fatal(err)
	}
	if mem.ReadAt(raw[:block.Size], 0); bytes.Equal(raw[:block.Size], make([]byte, block.Size)) {
		t.Fatal("a block of zeros written in clear")
	}
	if err := d.Discard(8*block.Size, 2*block.Size); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(got[:2*block.Size], 8*block.Size); err != nil || !bytes.Equal(got[:2*block.Size], make([]byte, 2*block.Size)) {
		t.Fatalf("discarded blocks read as other than zeros (%v)", err)
	}
}

// TestOtherKey: another key reads garbage, not the data.
func TestOtherKey(t *testing.T) {
	mem := block.NewMem(1 << 20)
	d, _ := New(mem, testKey(t))
	if _, err := d.WriteAt(pattern, 0); err != nil {
		t.Fatal(err)
	}
	other, _ := New(mem, testKey(t))
	got := make([]byte, block.Size)
	if _, err := other.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, pattern) {
		t.Fatal("another key decrypted the data")
	}
}

func TestBadRequests(t *testing.T) {
	if _, err := New(block.NewMem(1<<20), make([]byte, 32)); err == nil {
		t.Fatal("a 32-byte key accepted")
	}
	d, _ := New(block.NewMem(1<<20), testKey(t))
	if _, err := d.WriteAt(make([]byte, 512), 0); !errors.Is(err, block.ErrUnaligned) {
		t.Fatalf("unaligned write: %v", err)
	}
	if _, err := d.ReadAt(make([]byte, block.Size), 100); !errors.Is(err, block.ErrUnaligned) {
		t.Fatalf("unaligned read: %v", err)
	}
}

// TestWrap: a wrapped key opens with its passphrase only; a new passphrase
// opens the same key; a tampered wrapping is refused.
func TestWrap(t *testing.T) {
	key := testKey(t)
	w, err := Wrap(key, []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w.Sealed, key) {
		t.Fatal("the key is in the wrapping in clear")
	}
	got, err := w.Unwrap([]byte("correct horse"))
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("unwrap: %v", err)
	}
	if _, err := w.Unwrap([]byte("wrong horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("unwrap with the wrong passphrase: %v", err)
	}
	w2, err := w.Rewrap([]byte("correct horse"), []byte("battery staple"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := w2.Unwrap([]byte("battery staple")); err != nil || !bytes.Equal(got, key) {
		t.Fatalf("unwrap after a passphrase change: %v", err)
	}
	if _, err := w2.Unwrap([]byte("correct horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatal("the old passphrase still opens the new wrapping")
	}
	if _, err := w.Rewrap([]byte("nope"), []byte("x")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("rewrap with the wrong passphrase: %v", err)
	}
	bad := *w
	bad.Sealed = append([]byte(nil), w.Sealed...)
	bad.Sealed[0] ^= 1
	if _, err := bad.Unwrap([]byte("correct horse")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("tampered wrapping: %v", err)
	}
	greedy := *w
	greedy.Memory = 1 << 30
	if _, err := greedy.Unwrap([]byte("correct horse")); err == nil {
		t.Fatal("a wrapping asking for 1 TiB of memory was tried")
	}
	if _, err := (&Wrapped{}).Unwrap([]byte("x")); err == nil {
		t.Fatal("an empty wrapping unwrapped")
	}
	if _, err := Wrap(key, nil); err == nil {
		t.Fatal("an empty passphrase accepted")
	}
}

// BenchmarkWrite and BenchmarkRead: 4 KiB writes or reads to memory, plain
// and encrypted, in one run; compare the two.
func BenchmarkWrite(b *testing.B) { benchIO(b, false) }
func BenchmarkRead(b *testing.B)  { benchIO(b, true) }

func benchIO(b *testing.B, read bool) {
	for _, enc := range []bool{false, true} {
		name := "plain"
		if enc {
			name = "encrypted"
		}
		b.Run(name, func(b *testing.B) {
			var dev block.Device = block.NewMem(64 << 20)
			if enc {
				dev, _ = New(dev, testKey(b))
			}
			buf := append([]byte(nil), pattern...)
			for i := range 16 << 10 {
				dev.WriteAt(buf, int64(i)*block.Size)
			}
			io := dev.WriteAt
			if read {
				io = dev.ReadAt
			}
			b.SetBytes(block.Size)
			for i := 0; b.Loop(); i++ {
				if _, err := io(buf, int64(i%(16<<10))*block.Size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestSeal: a sealed secret opens under its cluster secret and name only.
func TestSeal(t *testing.T) {
	cs := []byte("the-cluster-secret-of-test")
	nonce, sealed, err := Seal(cs, "db", []byte("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("sealed in clear")
	}
	if v, err := Open(cs, "db", nonce, sealed); err != nil || string(v) != "hunter2" {
		t.Fatalf("open: %q, %v", v, err)
	}
	if _, err := Open([]byte("another-cluster-secret-0"), "db", nonce, sealed); !errors.Is(err, ErrSealedElsewhere) {
		t.Fatalf("open under another cluster secret: %v", err)
	}
	if _, err := Open(cs, "other", nonce, sealed); !errors.Is(err, ErrSealedElsewhere) {
		t.Fatalf("open as another name: %v", err)
	}
	if _, _, err := Seal(nil, "db", []byte("x")); err == nil {
		t.Fatal("sealed with no cluster secret")
	}
}

// TestXTSMatchesXCrypto: xtsCipher computes what golang.org/x/crypto/xts
// does, for random keys, data and block numbers, and decrypts it back.
func TestXTSMatchesXCrypto(t *testing.T) {
	for i := range 50 {
		key := testKey(t)
		ours, err := newXTS(key)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := xts.NewCipher(aes.NewCipher, key)
		if err != nil {
			t.Fatal(err)
		}
		src := make([]byte, block.Size)
		rand.Read(src)
		unit := uint64(i) * 0x9E3779B97F4A7C15 // spread over the whole range
		want, got := make([]byte, len(src)), make([]byte, len(src))
		ref.Encrypt(want, src, unit)
		ours.Encrypt(got, src, unit)
		if !bytes.Equal(got, want) {
			t.Fatalf("unit %d: ciphertext differs from x/crypto/xts", unit)
		}
		ours.Decrypt(got, got, unit)
		if !bytes.Equal(got, src) {
			t.Fatalf("unit %d: does not decrypt back", unit)
		}
	}
}

// TestXTSAssembly: where the CPU has AES-NI, the assembly (eight blocks
// at a time) computes what the Go loop over crypto/aes does, for units of
// one group to 8 KiB, in place and not, for random keys; units it does
// not take (not a multiple of eight blocks) go through the Go loop.
func TestXTSAssembly(t *testing.T) {
	if !useAESNI {
		t.Skip("no AES-NI on this CPU (or built purego): only the Go loop runs")
	}
	if sbox[0] != 0x63 || sbox[1] != 0x7c || sbox[0x53] != 0xed || sbox[0xff] != 0x16 {
		t.Fatalf("S-box: %#x %#x %#x %#x, want 0x63 0x7c 0xed 0x16 (FIPS-197, figure 7)", sbox[0], sbox[1], sbox[0x53], sbox[0xff])
	}
	for i := range 40 {
		key := testKey(t)
		asm, err := newXTS(key)
		if err != nil {
			t.Fatal(err)
		}
		goLoop := &xtsCipher{k1: asm.k1, k2: asm.k2} // no round keys: the Go loop
		for _, n := range []int{128, 256, 1024, block.Size, 2 * block.Size, 48, 4000} {
			src := make([]byte, n)
			rand.Read(src)
			unit := uint64(i)*0x9E3779B97F4A7C15 + uint64(n)
			want, got := make([]byte, n), make([]byte, n)
			goLoop.Encrypt(want, src, unit)
			asm.Encrypt(got, src, unit)
			if !bytes.Equal(got, want) {
				t.Fatalf("key %d, %d bytes: the assembly's ciphertext differs from the Go loop's", i, n)
			}
			inPlace := bytes.Clone(src)
			asm.Encrypt(inPlace, inPlace, unit)
			if !bytes.Equal(inPlace, want) {
				t.Fatalf("key %d, %d bytes: encrypting in place differs", i, n)
			}
			asm.Decrypt(inPlace, inPlace, unit)
			goLoop.Decrypt(got, want, unit)
			if !bytes.Equal(inPlace, src) || !bytes.Equal(got, src) {
				t.Fatalf("key %d, %d bytes: does not decrypt back", i, n)
			}
		}
	}
}

// BenchmarkXTS: x/crypto/xts and xtsCipher on 4 KiB, in one run.
func BenchmarkXTS(b *testing.B) {
	key := testKey(b)
	ours, _ := newXTS(key)
	ref, _ := xts.NewCipher(aes.NewCipher, key)
	buf := make([]byte, block.Size)
	aesOnly := func(dst, src []byte, _ uint64) { // the floor: the AES alone
		for i := 0; i < len(src); i += 16 {
			ours.k1.Encrypt(dst[i:i+16], src[i:i+16])
		}
	}
	goLoop := &xtsCipher{k1: ours.k1, k2: ours.k2}
	for name, enc := range map[string]func([]byte, []byte, uint64){"x-crypto": ref.Encrypt, "ballast": ours.Encrypt, "go-loop": goLoop.Encrypt, "aes-only": aesOnly} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(block.Size)
			for i := 0; b.Loop(); i++ {
				enc(buf, buf, uint64(i))
			}
		})
	}
}
