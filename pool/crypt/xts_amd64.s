//go:build amd64 && !purego

#include "textflag.h"

// AES-XTS-256 over groups of eight 16-byte blocks with AES-NI: the eight
// blocks go through the rounds together, so the AESENC latency is paid
// once per group instead of once per block.
//
// Registers: X0-X7 the blocks, X8 a round key, X9 the tweak, X10 a
// temporary, X11 the doubling mask. Each block's tweak is kept in the
// caller's scratch (R8) for the second whitening.

// The mask of the tweak's doubling in GF(2^128): 0x87 into the low byte
// when bit 127 carries out, 1 into bit 64 when bit 63 carries over.
DATA xtsmask<>+0(SB)/4, $0x87
DATA xtsmask<>+4(SB)/4, $0
DATA xtsmask<>+8(SB)/4, $1
DATA xtsmask<>+12(SB)/4, $0
GLOBL xtsmask<>(SB), RODATA|NOPTR, $16

// DOUBLE: X9 *= x in GF(2^128), little-endian (IEEE 1619).
#define DOUBLE MOVOU X9, X10; PSRAL $31, X10; PADDQ X9, X9; PSHUFD $0x13, X10, X10; PAND X11, X10; PXOR X10, X9

// WHITEN: block i of SI into Xn, xored with its tweak, which is saved.
#define WHITEN(i, Xn) MOVOU X9, (i*16)(R8); MOVOU (i*16)(SI), Xn; PXOR X9, Xn; DOUBLE

// ROUND: round key r applied to the eight blocks with op.
#define ROUND(op, r) MOVOU (r*16)(AX), X8; op X8, X0; op X8, X1; op X8, X2; op X8, X3; op X8, X4; op X8, X5; op X8, X6; op X8, X7

// UNWHITEN: Xn xored with block i's tweak, to DI.
#define UNWHITEN(i, Xn) MOVOU (i*16)(R8), X10; PXOR X10, Xn; MOVOU Xn, (i*16)(DI)

#define LOAD MOVQ rk+0(FP), AX; MOVQ dst+8(FP), DI; MOVQ src+16(FP), SI; MOVQ groups+24(FP), CX; MOVQ tweak+32(FP), DX; MOVQ scratch+40(FP), R8; MOVOU (DX), X9; MOVOU xtsmask<>(SB), X11

#define WHITEN8 WHITEN(0, X0); WHITEN(1, X1); WHITEN(2, X2); WHITEN(3, X3); WHITEN(4, X4); WHITEN(5, X5); WHITEN(6, X6); WHITEN(7, X7)

#define UNWHITEN8 UNWHITEN(0, X0); UNWHITEN(1, X1); UNWHITEN(2, X2); UNWHITEN(3, X3); UNWHITEN(4, X4); UNWHITEN(5, X5); UNWHITEN(6, X6); UNWHITEN(7, X7)

#define ROUNDS(op) ROUND(op, 1); ROUND(op, 2); ROUND(op, 3); ROUND(op, 4); ROUND(op, 5); ROUND(op, 6); ROUND(op, 7); ROUND(op, 8); ROUND(op, 9); ROUND(op, 10); ROUND(op, 11); ROUND(op, 12); ROUND(op, 13)

// func xtsEncrypt8(rk *roundKeys, dst, src *byte, groups int, tweak *[16]byte, scratch *[128]byte)
TEXT ·xtsEncrypt8(SB), NOSPLIT, $0-48
	LOAD
enc:
	WHITEN8
	ROUND(PXOR, 0)
	ROUNDS(AESENC)
	ROUND(AESENCLAST, 14)
	UNWHITEN8
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ enc
	MOVOU X9, (DX)
	RET

// func xtsDecrypt8(rk *roundKeys, dst, src *byte, groups int, tweak *[16]byte, scratch *[128]byte)
TEXT ·xtsDecrypt8(SB), NOSPLIT, $0-48
	LOAD
dec:
	WHITEN8
	ROUND(PXOR, 0)
	ROUNDS(AESDEC)
	ROUND(AESDECLAST, 14)
	UNWHITEN8
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ dec
	MOVOU X9, (DX)
	RET

// func aesEncrypt1(rk *roundKeys, b *[16]byte): b encrypted in place with
// AES-256 (the tweak of a data unit).
TEXT ·aesEncrypt1(SB), NOSPLIT, $0-16
	MOVQ rk+0(FP), AX
	MOVQ b+8(FP), DI
	MOVOU (DI), X0
	MOVOU (AX), X8
	PXOR X8, X0
	MOVOU 16(AX), X8
	AESENC X8, X0
	MOVOU 32(AX), X8
	AESENC X8, X0
	MOVOU 48(AX), X8
	AESENC X8, X0
	MOVOU 64(AX), X8
	AESENC X8, X0
	MOVOU 80(AX), X8
	AESENC X8, X0
	MOVOU 96(AX), X8
	AESENC X8, X0
	MOVOU 112(AX), X8
	AESENC X8, X0
	MOVOU 128(AX), X8
	AESENC X8, X0
	MOVOU 144(AX), X8
	AESENC X8, X0
	MOVOU 160(AX), X8
	AESENC X8, X0
	MOVOU 176(AX), X8
	AESENC X8, X0
	MOVOU 192(AX), X8
	AESENC X8, X0
	MOVOU 208(AX), X8
	AESENC X8, X0
	MOVOU 224(AX), X8
	AESENCLAST X8, X0
	MOVOU X0, (DI)
	RET
