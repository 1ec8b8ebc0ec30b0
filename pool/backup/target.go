// Package backup keeps volume backups in object storage: the targets (an S3
// bucket, a directory), the chunk format (content-addressed, compressed,
// checksummed), the manifest of each backup, and the operations on them
// (create, incremental on a parent, restore, delete with garbage collection
// of the chunks no backup uses any more). It reads and writes through
// io.ReaderAt and io.WriterAt and knows nothing of etcd or replicas: the
// node decides what to back up and from where.
package backup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// Errors the package wraps, for errors.Is.
var (
	// ErrNotExist: no object under that key.
	ErrNotExist = errors.New("does not exist")
	// ErrCorrupt: an object does not match its checksum or address.
	ErrCorrupt = errors.New("corrupt")
	// ErrInvalid: a target URL, credentials file or manifest that does
	// not parse.
	ErrInvalid = errors.New("invalid")
	// ErrDenied: the object store refused the credentials.
	ErrDenied = errors.New("access denied")
)

// Target is a place backups are kept: a flat store of objects by key.
// Keys are slash-separated paths relative to the target's prefix.
type Target interface {
	// Put stores data under key, whole or not at all.
	Put(ctx context.Context, key string, data []byte) error
	// Get reads the object under key; a missing one is ErrNotExist.
	Get(ctx context.Context, key string) ([]byte, error)
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns the keys that start with prefix, in any order.
	List(ctx context.Context, prefix string) ([]string, error)
	// Check makes sure the target is there and its credentials open it.
	Check(ctx context.Context) error
	// String names the target, without credentials.
	String() string
}

// Config says where a target is and how to reach it.
type Config struct {
	// URL is s3://bucket[/prefix] or file:///absolute/dir.
	URL string `json:"url"`
	// Endpoint is the S3 server's host:port; empty for file targets.
	Endpoint string `json:"endpoint,omitempty"`
	// Region of the bucket; empty for the server's default.
	Region string `json:"region,omitempty"`
	// Insecure reaches the endpoint over plain HTTP instead of HTTPS.
	Insecure bool `json:"insecure,omitempty"`
}

// Credentials are an S3 access key pair.
type Credentials struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// Location is a parsed target URL.
type Location struct {
	Scheme string // "s3" or "file"
	Bucket string // s3 only
	Prefix string // s3: key prefix, without slashes at either end; file: the directory
}

// ParseURL parses a target URL: s3://bucket[/prefix] or file:///dir.
func ParseURL(raw string) (Location, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Location{}, fmt.Errorf("target URL %q: %w: %w", raw, ErrInvalid, err)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Location{}, fmt.Errorf("target URL %q: %w: no user, query or fragment is allowed (credentials go in --credentials-file)", raw, ErrInvalid)
	}
	switch u.Scheme {
	case "s3":
		if !validBucket(u.Host) {
			return Location{}, fmt.Errorf("target URL %q: %w: bucket %q is not an S3 bucket name (3-63 of a-z, 0-9, '.', '-')", raw, ErrInvalid, u.Host)
		}
		prefix := strings.Trim(u.Path, "/")
		if prefix != "" && path.Clean(prefix) != prefix {
			return Location{}, fmt.Errorf("target URL %q: %w: prefix %q is not a clean path", raw, ErrInvalid, prefix)
		}
		return Location{Scheme: "s3", Bucket: u.Host, Prefix: prefix}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("target URL %q: %w: a file target is on this host: file:///dir", raw, ErrInvalid)
		}
		if !path.IsAbs(u.Path) || path.Clean(u.Path) != u.Path || u.Path == "/" {
			return Location{}, fmt.Errorf("target URL %q: %w: give an absolute, clean directory other than /: file:///dir", raw, ErrInvalid)
		}
		return Location{Scheme: "file", Prefix: u.Path}, nil
	case "":
		return Location{}, fmt.Errorf("target URL %q: %w: no scheme; give s3://bucket/prefix or file:///dir", raw, ErrInvalid)
	default:
		return Location{}, fmt.Errorf("target URL %q: %w: scheme %q is not supported (s3, file)", raw, ErrInvalid, u.Scheme)
	}
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return b[0] != '.' && b[0] != '-' && b[len(b)-1] != '.' && b[len(b)-1] != '-'
}

// Validate checks cfg and its credentials before they are stored.
func (cfg Config) Validate(cred Credentials) error {
	loc, err := ParseURL(cfg.URL)
	if err != nil {
		return err
	}
	switch loc.Scheme {
	case "s3":
		if cfg.Endpoint == "" {
			return fmt.Errorf("target %s: %w: an S3 target needs --endpoint host:port", cfg.URL, ErrInvalid)
		}
		if strings.Contains(cfg.Endpoint, "/") {
			return fmt.Errorf("target %s: %w: endpoint %q is host:port, without a scheme or path (--insecure for plain HTTP)", cfg.URL, ErrInvalid, cfg.Endpoint)
		}
		if cred.AccessKey == "" || cred.SecretKey == "" {
			return fmt.Errorf("target %s: %w: an S3 target needs credentials (--credentials-file)", cfg.URL, ErrInvalid)
		}
	case "file":
		if cfg.Endpoint != "" || cred != (Credentials{}) {
			return fmt.Errorf("target %s: %w: a file target takes no endpoint or credentials", cfg.URL, ErrInvalid)
		}
	}
	return nil
}

// Open opens the target cfg describes.
func Open(cfg Config, cred Credentials) (Target, error) {
	if err := cfg.Validate(cred); err != nil {
		return nil, err
	}
	loc, _ := ParseURL(cfg.URL)
	if loc.Scheme == "file" {
		return OpenDir(loc.Prefix)
	}
	return openS3(cfg, loc, cred)
}

// ParseCredentials reads an access key pair from a credentials file: the
// AWS shared-credentials form (aws_access_key_id = ..., aws_secret_access_key
// = ..., under [default] or no section) or access_key / secret_key lines.
// Comments start with # or ;.
func ParseCredentials(data []byte) (Credentials, error) {
	var c Credentials
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		switch {
		case s == "" || s[0] == '#' || s[0] == ';':
			continue
		case s[0] == '[':
			if !strings.HasSuffix(s, "]") {
				return Credentials{}, fmt.Errorf("credentials line %d: %w: unclosed section %q", line, ErrInvalid, s)
			}
			section = strings.TrimSpace(s[1 : len(s)-1])
			continue
		}
		if section != "" && section != "default" {
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return Credentials{}, fmt.Errorf("credentials line %d: %w: want key = value", line, ErrInvalid)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "aws_access_key_id", "access_key":
			c.AccessKey = v
		case "aws_secret_access_key", "secret_key":
			c.SecretKey = v
		case "aws_session_token", "region":
		default:
			return Credentials{}, fmt.Errorf("credentials line %d: %w: unknown key %q (aws_access_key_id, aws_secret_access_key)", line, ErrInvalid, k)
		}
	}
	if err := sc.Err(); err != nil {
		return Credentials{}, fmt.Errorf("credentials: %w: %w", ErrInvalid, err)
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return Credentials{}, fmt.Errorf("credentials: %w: need both aws_access_key_id and aws_secret_access_key", ErrInvalid)
	}
	return c, nil
}
