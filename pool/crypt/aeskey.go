package crypt

// The AES-256 key schedule (FIPS-197, section 5.2) for xts_amd64.s, which
// runs the AES rounds with AES-NI on eight blocks at once: crypto/aes does
// one block per call and keeps its round keys to itself. TestAESRounds
// checks the rounds, with these keys, against crypto/aes.

// xtime multiplies x by 2 in AES's GF(2^8).
func xtime(x byte) byte {
	if x&0x80 != 0 {
		return x<<1 ^ 0x1b
	}
	return x << 1
}

// sbox is the AES S-box, computed as FIPS-197 defines it: the
// multiplicative inverse in GF(2^8), then the affine transform.
var sbox = func() (s [256]byte) {
	rotl := func(x byte, n uint) byte { return x<<n | x>>(8-n) }
	// p runs over GF(2^8)* by powers of 3, q by powers of 3's inverse,
	// so that q is p's inverse at every step.
	p, q := byte(1), byte(1)
	for {
		p ^= xtime(p) // p *= 3
		q ^= q << 1   // q /= 3
		q ^= q << 2
		q ^= q << 4
		if q&0x80 != 0 {
			q ^= 0x09
		}
		s[p] = q ^ rotl(q, 1) ^ rotl(q, 2) ^ rotl(q, 3) ^ rotl(q, 4) ^ 0x63
		if p == 1 {
			break
		}
	}
	s[0] = 0x63 // 0 has no inverse; the affine transform of 0
	return s
}()

// aesRounds is the number of rounds of AES-256.
const aesRounds = 14

// roundKeys is an AES-256 key schedule: 15 round keys of 16 bytes.
type roundKeys [(aesRounds + 1) * 16]byte

// expandKey returns the encryption key schedule of a 32-byte AES key.
func expandKey(key []byte) *roundKeys {
	var w roundKeys
	copy(w[:32], key)
	rcon := byte(1)
	for i := 8; i < len(w)/4; i++ {
		var t [4]byte
		copy(t[:], w[4*(i-1):4*i])
		switch i % 8 {
		case 0: // RotWord, SubWord, Rcon
			t = [4]byte{sbox[t[1]] ^ rcon, sbox[t[2]], sbox[t[3]], sbox[t[0]]}
			rcon = xtime(rcon)
		case 4: // SubWord
			t = [4]byte{sbox[t[0]], sbox[t[1]], sbox[t[2]], sbox[t[3]]}
		}
		for j := range 4 {
			w[4*i+j] = w[4*(i-8)+j] ^ t[j]
		}
	}
	return &w
}

// invMixColumns applies AES's InvMixColumns to a 16-byte round key.
func invMixColumns(k []byte) {
	mul := func(x, by byte) (r byte) { // x * by in GF(2^8)
		for ; by != 0; by >>= 1 {
			if by&1 != 0 {
				r ^= x
			}
			x = xtime(x)
		}
		return r
	}
	for c := 0; c < 16; c += 4 {
		a0, a1, a2, a3 := k[c], k[c+1], k[c+2], k[c+3]
		k[c] = mul(a0, 14) ^ mul(a1, 11) ^ mul(a2, 13) ^ mul(a3, 9)
		k[c+1] = mul(a0, 9) ^ mul(a1, 14) ^ mul(a2, 11) ^ mul(a3, 13)
		k[c+2] = mul(a0, 13) ^ mul(a1, 9) ^ mul(a2, 14) ^ mul(a3, 11)
		k[c+3] = mul(a0, 11) ^ mul(a1, 13) ^ mul(a2, 9) ^ mul(a3, 14)
	}
}

// decryptKeys returns the key schedule of the equivalent inverse cipher
// (FIPS-197, section 5.3.5), as AESDEC takes it: the encryption round
// keys in reverse order, all but the first and last through
// InvMixColumns.
func decryptKeys(ek *roundKeys) *roundKeys {
	var dk roundKeys
	for r := 0; r <= aesRounds; r++ {
		copy(dk[16*r:16*r+16], ek[16*(aesRounds-r):16*(aesRounds-r)+16])
		if r != 0 && r != aesRounds {
			invMixColumns(dk[16*r : 16*r+16])
		}
	}
	return &dk
}
