package cql

import (
	"errors"
	"fmt"

	"github.com/datastax/go-cassandra-native-protocol/message"
	"github.com/datastax/go-cassandra-native-protocol/primitive"
)

// Error codes the server answers with (see the native protocol spec, §9).
const (
	codeServer        = primitive.ErrorCodeServerError
	codeProtocol      = primitive.ErrorCodeProtocolError
	codeSyntax        = primitive.ErrorCodeSyntaxError
	codeInvalid       = primitive.ErrorCodeInvalid
	codeAlreadyExists = primitive.ErrorCodeAlreadyExists
	codeUnprepared    = primitive.ErrorCodeUnprepared
)

// Error is a CQL error: it becomes an ERROR frame with its code and message.
type Error struct {
	Code    primitive.ErrorCode
	Message string
	// Keyspace and Table name the existing object of an AlreadyExists error.
	Keyspace, Table string
	// ID is the unknown statement id of an Unprepared error.
	ID []byte
}

func (e *Error) Error() string { return fmt.Sprintf("cql error %#x: %s", uint32(e.Code), e.Message) }

func newError(code primitive.ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidf(format string, args ...any) *Error { return newError(codeInvalid, format, args...) }

// errorMessage turns any error into the ERROR message sent to the client;
// errors that are not *Error are server errors.
func errorMessage(err error) message.Error {
	var e *Error
	if !errors.As(err, &e) {
		return &message.ServerError{ErrorMessage: err.Error()}
	}
	switch e.Code {
	case codeProtocol:
		return &message.ProtocolError{ErrorMessage: e.Message}
	case codeSyntax:
		return &message.SyntaxError{ErrorMessage: e.Message}
	case codeInvalid:
		return &message.Invalid{ErrorMessage: e.Message}
	case primitive.ErrorCodeConfigError:
		return &message.ConfigError{ErrorMessage: e.Message}
	case codeAlreadyExists:
		return &message.AlreadyExists{ErrorMessage: e.Message, Keyspace: e.Keyspace, Table: e.Table}
	case codeUnprepared:
		return &message.Unprepared{ErrorMessage: e.Message, Id: e.ID}
	default:
		return &message.ServerError{ErrorMessage: e.Message}
	}
}
