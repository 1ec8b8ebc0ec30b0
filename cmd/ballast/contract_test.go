package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/api/apitest"
	"github.com/ballast-io/ballast/pool/spec"
)

// TestServiceContract holds a real daemon to the rules the adapters' fake
// service keeps (apitest.Contract), over the daemon's socket.
func TestServiceContract(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("a cluster secret for the tests"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "--cluster-secret-file", secret) // secrets are sealed under it
	apitest.Contract(t, d.client, d.node)
}

// TestAttachTimes: an attach answers how long its steps took, and an
// inspect on the same node shows it, for tools that time takeovers
// (ballast-bench) without reading the daemon's log.
func TestAttachTimes(t *testing.T) {
	d := startDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := d.client.CreateVolume(ctx, spec.Volume{Name: "timed", Size: 32 << 20, Repl: 2, FS: "ext4"}, api.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err := d.client.AttachVolume(ctx, "timed", api.AttachOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Took == nil || a.Took.Claim <= 0 || a.Took.Open <= 0 || a.Took.Mount <= 0 {
		t.Fatalf("attach answered times %+v, want every step timed", a.Took)
	}
	v, err := d.client.InspectVolume(ctx, "timed")
	if err != nil {
		t.Fatal(err)
	}
	if v.Attachment == nil || v.Attachment.Took == nil || *v.Attachment.Took != *a.Took {
		t.Fatalf("inspect shows %+v, the attach answered %+v", v.Attachment, a.Took)
	}
	if err := d.client.DetachVolume(ctx, "timed"); err != nil {
		t.Fatal(err)
	}
}
