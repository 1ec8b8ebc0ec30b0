package main

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/testenv"
)

// netLab is a private network for one test: a bridge in the host's network
// namespace and a network namespace per node, each with an address of its
// own, so that one node can be cut off from all the others (a partition)
// while the test still reaches every daemon through its unix socket.
type netLab struct {
	t      *testing.T
	id     string
	bridge string
	subnet string // "10.231.N"
	nodes  map[string]string
}

func newNetLab(t *testing.T) *netLab {
	t.Helper()
	testenv.RequirePrivileged(t)
	testenv.RequireTools(t, "ip", "iptables", "nsenter")
	l := &netLab{t: t, id: fmt.Sprintf("%04x", rand.IntN(1<<16)), nodes: map[string]string{}}
	l.bridge = "blbr" + l.id
	l.subnet = fmt.Sprintf("10.231.%d", 1+rand.IntN(250))
	t.Cleanup(l.close)
	l.ip("link", "add", l.bridge, "type", "bridge")
	l.ip("addr", "add", l.subnet+".1/24", "dev", l.bridge)
	l.ip("link", "set", l.bridge, "up")
	// Docker sets the FORWARD policy to DROP and bridged traffic passes
	// through it: let this bridge's own traffic through.
	l.run("iptables", "-I", "FORWARD", "1", "-i", l.bridge, "-o", l.bridge, "-j", "ACCEPT")
	return l
}

func (l *netLab) run(name string, args ...string) {
	l.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		l.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (l *netLab) ip(args ...string) { l.t.Helper(); l.run("ip", args...) }

// add makes a namespace for node and returns its address and the command
// prefix that runs a program inside it.
func (l *netLab) add(node string) (addr string, wrap []string) {
	l.t.Helper()
	ns, veth := "bl"+l.id+node, "blv"+l.id+node
	addr = fmt.Sprintf("%s.%d", l.subnet, 10+len(l.nodes))
	l.nodes[node] = ns
	l.ip("netns", "add", ns)
	l.ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
	l.ip("link", "set", veth, "master", l.bridge, "up")
	l.ip("-n", ns, "addr", "add", addr+"/24", "dev", "eth0")
	l.ip("-n", ns, "link", "set", "eth0", "up")
	l.ip("-n", ns, "link", "set", "lo", "up")
	return addr, []string{"nsenter", "--net=/run/netns/" + ns, "--"}
}

// cut partitions node from every other node; mend ends the partition.
func (l *netLab) cut(node string)  { l.t.Helper(); l.ip("link", "set", "blv"+l.id+node, "down") }
func (l *netLab) mend(node string) { l.t.Helper(); l.ip("link", "set", "blv"+l.id+node, "up") }

// close removes everything add and newNetLab made. The daemons in the
// namespaces were stopped by their own cleanups, registered later.
func (l *netLab) close() {
	for node, ns := range l.nodes {
		exec.Command("ip", "link", "del", "blv"+l.id+node).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("iptables", "-D", "FORWARD", "-i", l.bridge, "-o", l.bridge, "-j", "ACCEPT").Run()
	exec.Command("ip", "link", "del", l.bridge).Run()
}
