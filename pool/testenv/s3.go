package testenv

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Server is an S3 server a test started: versitygw over a directory.
type S3Server struct {
	Endpoint  string // 127.0.0.1:port, plain HTTP
	AccessKey string
	SecretKey string
	Root      string // the directory it serves, one subdirectory per bucket
}

// StartS3 starts versitygw (an S3 gateway over a directory, installed by
// deploy/install-deps.sh) on a free loopback port, with one bucket per
// name in buckets, and stops it when the test ends. It skips (or fails)
// when versitygw is missing.
func StartS3(t testing.TB, buckets ...string) *S3Server {
	t.Helper()
	bin, err := LookTool("versitygw")
	if err != nil {
		SkipOrFail(t, "test needs versitygw (deploy/install-deps.sh installs it): %v", err)
		return nil
	}
	s := &S3Server{AccessKey: "ballasttest", SecretKey: "ballast-test-secret-key", Root: filepath.Join(t.TempDir(), "s3")}
	if err := os.MkdirAll(s.Root, 0o700); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Endpoint = lis.Addr().String()
	lis.Close()
	cmd := exec.Command(bin, "--port", s.Endpoint, "--access", s.AccessKey, "--secret", s.SecretKey, "posix", s.Root)
	log, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
	})
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if _, err = c.ListBuckets(ctx); err == nil {
			break
		}
		if ctx.Err() != nil {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("versitygw on %s did not answer: %v\n%s", s.Endpoint, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, b := range buckets {
		if err := c.MakeBucket(ctx, b, minio.MakeBucketOptions{}); err != nil {
			t.Fatalf("make bucket %s: %v", b, err)
		}
	}
	t.Logf("versitygw (pid %s) serves S3 on %s", strconv.Itoa(cmd.Process.Pid), s.Endpoint)
	return s
}
