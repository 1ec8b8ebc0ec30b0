package main

import (
	"testing"

	"github.com/ballast-io/ballast/pool/api/apitest"
)

// TestServiceContract holds a real daemon to the rules the adapters' fake
// service keeps (apitest.Contract), over the daemon's socket.
func TestServiceContract(t *testing.T) {
	d := startDaemon(t)
	apitest.Contract(t, d.client, d.node)
}
