package cql

import (
	"fmt"
	"strings"
)

// tokenKind is the lexical class of a CQL token.
type tokenKind int

const (
	tokEOF       tokenKind = iota
	tokIdent               // unquoted identifier or keyword, kept as typed
	tokQuoted              // "quoted identifier", unescaped
	tokString              // 'string' or $$string$$, unescaped
	tokInteger             // 123, -123
	tokFloat               // 1.5, -1e10, NaN, Infinity
	tokHex                 // 0xCAFE (blob constant), text holds the hex digits
	tokUUID                // 8-4-4-4-12 hex
	tokDuration            // 1h30m, P1D, ... (recognised only to reject it)
	tokBind                // ?
	tokNamedBind           // :name
	tokPunct               // ( ) , ; . = < > <= >= != * { } [ ] : + -
)

func (k tokenKind) String() string {
	switch k {
	case tokEOF:
		return "end of input"
	case tokIdent:
		return "identifier"
	case tokQuoted:
		return "quoted identifier"
	case tokString:
		return "string"
	case tokInteger:
		return "integer"
	case tokFloat:
		return "float"
	case tokHex:
		return "blob constant"
	case tokUUID:
		return "uuid"
	case tokDuration:
		return "duration"
	case tokBind:
		return "bind marker"
	case tokNamedBind:
		return "named bind marker"
	default:
		return "symbol"
	}
}

// token is one lexeme with its position (byte offset) in the statement.
type token struct {
	kind tokenKind
	text string
	pos  int
}

// lex splits a CQL statement into tokens. Comments (--, //, /* */) and
// whitespace are dropped. Errors are CQL syntax errors naming the position.
func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '-' && i+1 < len(src) && src[i+1] == '-', c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, syntaxErrorAt(src, i, "unterminated comment")
			}
			i += end + 4
		case c == '\'':
			s, n, err := lexQuoted(src, i, '\'')
			if err != nil {
				return nil, err
			}
			toks = append(toks, token{tokString, s, i})
			i += n
		case c == '"':
			s, n, err := lexQuoted(src, i, '"')
			if err != nil {
				return nil, err
			}
			if s == "" {
				return nil, syntaxErrorAt(src, i, "empty quoted identifier")
			}
			toks = append(toks, token{tokQuoted, s, i})
			i += n
		case c == '$' && i+1 < len(src) && src[i+1] == '$':
			end := strings.Index(src[i+2:], "$$")
			if end < 0 {
				return nil, syntaxErrorAt(src, i, "unterminated $$ string")
			}
			toks = append(toks, token{tokString, src[i+2 : i+2+end], i})
			i += end + 4
		case c == '?':
			toks = append(toks, token{tokBind, "?", i})
			i++
		case c == ':' && i+1 < len(src) && (isIdentStart(src[i+1]) || src[i+1] == '"'):
			if src[i+1] == '"' {
				s, n, err := lexQuoted(src, i+1, '"')
				if err != nil {
					return nil, err
				}
				toks = append(toks, token{tokNamedBind, s, i})
				i += 1 + n
				break
			}
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			toks = append(toks, token{tokNamedBind, strings.ToLower(src[i+1 : j]), i})
			i = j
		case isDigit(c) || (c == '-' && i+1 < len(src) && (isDigit(src[i+1]) || src[i+1] == '.' && i+2 < len(src) && isDigit(src[i+2]))) || (c == '.' && i+1 < len(src) && isDigit(src[i+1])):
			t, n, err := lexNumberLike(src, i)
			if err != nil {
				return nil, err
			}
			toks = append(toks, t)
			i += n
		case isIdentStart(c):
			if n := uuidLen(src[i:]); n > 0 {
				toks = append(toks, token{tokUUID, src[i : i+n], i})
				i += n
				break
			}
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			word := src[i:j]
			switch strings.ToLower(word) {
			case "nan", "infinity":
				toks = append(toks, token{tokFloat, word, i})
			default:
				toks = append(toks, token{tokIdent, word, i})
			}
			i = j
		default:
			if i+1 < len(src) {
				two := src[i : i+2]
				if two == "<=" || two == ">=" || two == "!=" {
					toks = append(toks, token{tokPunct, two, i})
					i += 2
					break
				}
			}
			if strings.IndexByte("(),;.=<>*{}[]:+-", c) < 0 {
				return nil, syntaxErrorAt(src, i, fmt.Sprintf("unexpected character %q", c))
			}
			toks = append(toks, token{tokPunct, string(c), i})
			i++
		}
	}
	toks = append(toks, token{tokEOF, "", len(src)})
	return toks, nil
}

// lexQuoted reads a quote-delimited literal starting at src[start] where a
// doubled quote stands for one; it returns the unescaped text and the number
// of bytes consumed.
func lexQuoted(src string, start int, q byte) (string, int, error) {
	var b strings.Builder
	i := start + 1
	for i < len(src) {
		if src[i] == q {
			if i+1 < len(src) && src[i+1] == q {
				b.WriteByte(q)
				i += 2
				continue
			}
			return b.String(), i + 1 - start, nil
		}
		b.WriteByte(src[i])
		i++
	}
	what := "string"
	if q == '"' {
		what = "quoted identifier"
	}
	return "", 0, syntaxErrorAt(src, start, "unterminated "+what)
}

// lexNumberLike reads an integer, float, hex blob, UUID or duration at
// src[start].
func lexNumberLike(src string, start int) (token, int, error) {
	if n := uuidLen(src[start:]); n > 0 {
		return token{tokUUID, src[start : start+n], start}, n, nil
	}
	if src[start] == '0' && start+1 < len(src) && (src[start+1] == 'x' || src[start+1] == 'X') {
		j := start + 2
		for j < len(src) && isHex(src[j]) {
			j++
		}
		if j < len(src) && isIdentPart(src[j]) {
			return token{}, 0, syntaxErrorAt(src, start, "malformed blob constant")
		}
		return token{tokHex, src[start+2 : j], start}, j - start, nil
	}
	j := start
	if src[j] == '-' {
		j++
	}
	kind := tokInteger
	for j < len(src) && isDigit(src[j]) {
		j++
	}
	if j < len(src) && src[j] == '.' && (j+1 >= len(src) || src[j+1] != '.') {
		kind = tokFloat
		j++
		for j < len(src) && isDigit(src[j]) {
			j++
		}
	}
	if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
		k := j + 1
		if k < len(src) && (src[k] == '+' || src[k] == '-') {
			k++
		}
		if k < len(src) && isDigit(src[k]) {
			kind = tokFloat
			j = k
			for j < len(src) && isDigit(src[j]) {
				j++
			}
		}
	}
	if j < len(src) && isIdentStart(src[j]) {
		// 1h30m and the like are duration literals.
		k := j
		for k < len(src) && isIdentPart(src[k]) {
			k++
		}
		return token{tokDuration, src[start:k], start}, k - start, nil
	}
	return token{kind, src[start:j], start}, j - start, nil
}

// uuidLen returns 36 when s starts with a UUID in 8-4-4-4-12 hex form that is
// not followed by more identifier characters, else 0.
func uuidLen(s string) int {
	if len(s) < 36 {
		return 0
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return 0
			}
		default:
			if !isHex(s[i]) {
				return 0
			}
		}
	}
	if len(s) > 36 && isIdentPart(s[36]) {
		return 0
	}
	return 36
}

func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isHex(c byte) bool        { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }
func isIdentStart(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '_' }

// syntaxErrorAt makes a CQL syntax error pointing at a byte offset, in the
// "line L:C" form Cassandra uses.
func syntaxErrorAt(src string, pos int, msg string) error {
	line, col := 1, 0
	for i := 0; i < pos && i < len(src); i++ {
		if src[i] == '\n' {
			line++
			col = 0
		} else {
			col++
		}
	}
	return newError(codeSyntax, "line %d:%d %s", line, col, msg)
}
