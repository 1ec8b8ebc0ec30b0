package driver

import "github.com/ballast-io/ballast/pool/api/apitest"

// fake is the in-memory service the tests drive the driver through, held
// to the real daemon's rules by apitest.Contract.
type fake = apitest.Fake

// newFake is the service of node in a cluster whose other node, n2, is up:
// a volume attached on n2 is in use there.
func newFake(node string) *fake {
	f := apitest.New(node)
	f.SetUp("n2", true)
	return f
}
