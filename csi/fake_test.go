package csi

import "github.com/ballast-io/ballast/pool/api/apitest"

// fake is the in-memory service the tests drive the csi through, held to
// the real daemon's rules by apitest.Contract.
type fake = apitest.Fake

func newFake(node string) *fake { return apitest.New(node) }
