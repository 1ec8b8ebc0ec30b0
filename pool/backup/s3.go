package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a target in an S3 bucket, under a key prefix, through minio-go.
type S3 struct {
	c      *minio.Client
	bucket string
	prefix string // "" or ends with "/"
	name   string
}

func openS3(cfg Config, loc Location, cred Credentials) (*S3, error) {
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cred.AccessKey, cred.SecretKey, ""),
		Secure: !cfg.Insecure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("backup target %s: %w", cfg.URL, err)
	}
	s := &S3{c: c, bucket: loc.Bucket, name: cfg.URL + " at " + cfg.Endpoint}
	if loc.Prefix != "" {
		s.prefix = loc.Prefix + "/"
	}
	return s, nil
}

func (s *S3) String() string { return s.name }

// Check makes sure the bucket exists and the credentials open it.
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.c.BucketExists(ctx, s.bucket)
	if err != nil {
		return s.wrap("check bucket", "", err)
	}
	if !ok {
		return fmt.Errorf("backup target %s: bucket %s: %w (create it first)", s, s.bucket, ErrNotExist)
	}
	return nil
}

// wrap names the operation and turns the S3 error codes callers act on
// into the package's errors.
func (s *S3) wrap(op, key string, err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NoSuchBucket":
		err = fmt.Errorf("%w: %w", ErrNotExist, err)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		err = fmt.Errorf("%w (check the target's credentials): %w", ErrDenied, err)
	}
	if key != "" {
		return fmt.Errorf("backup target %s: %s %s: %w", s, op, key, err)
	}
	return fmt.Errorf("backup target %s: %s: %w", s, op, err)
}

// Put uploads data in one PUT: S3 stores an object whole or not at all.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	_, err := s.c.PutObject(ctx, s.bucket, s.prefix+key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", SendContentMd5: true})
	if err != nil {
		return s.wrap("put", key, err)
	}
	return nil
}

// Get downloads key whole.
func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := s.c.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		return nil, s.wrap("get", key, err)
	}
	return b, nil
}

// Delete removes key; S3 answers success for a missing key too.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := s.c.RemoveObject(ctx, s.bucket, s.prefix+key, minio.RemoveObjectOptions{}); err != nil {
		err = s.wrap("delete", key, err)
		if !errors.Is(err, ErrNotExist) {
			return err
		}
	}
	return nil
}

// List lists the keys under prefix, page by page.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	var keys []string
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, s.wrap("list", prefix, obj.Err)
		}
		keys = append(keys, obj.Key[len(s.prefix):])
	}
	return keys, nil
}
