package meta

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var testSecret = []byte("0123456789abcdef-cluster")

// TestClusterJoin: the first node starts etcd alone, the next two join as
// members (learners, then promoted), the fourth as a client; all four
// reach the same data over TLS; the cluster keeps quorum when one member
// stops; a restarted member comes back from its data; a client with a
// certificate from another secret is refused.
func TestClusterJoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	var first *Cluster
	join := func(name string) func(context.Context, JoinRequest) (JoinAnswer, error) {
		return func(ctx context.Context, req JoinRequest) (JoinAnswer, error) {
			cli, err := Connect(first.Endpoints, first.TLS)
			if err != nil {
				return JoinAnswer{}, err
			}
			defer cli.Close()
			return AdmitMember(ctx, cli, name, req)
		}
	}
	cfgs := make([]ClusterConfig, 4)
	nodes := make([]*Cluster, 4)
	for i := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		cfgs[i] = ClusterConfig{Name: name, DataDir: filepath.Join(dir, name), ClientAddr: freeAddr(t), PeerAddr: freeAddr(t), Secret: testSecret}
		if i > 0 {
			cfgs[i].Join = join(name)
		}
		c, err := StartCluster(ctx, cfgs[i], log)
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(c.Close)
		nodes[i] = c
		if i == 0 {
			first = c
		}
		if (c.Member != nil) != (i < MaxMembers) {
			t.Fatalf("%s: member %v", name, c.Member != nil)
		}
	}
	cli, err := Connect(nodes[3].Endpoints, nodes[3].TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	list, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Members) != MaxMembers {
		t.Fatalf("%d members", len(list.Members))
	}
	for _, m := range list.Members {
		if m.IsLearner {
			t.Fatalf("member %s is still a learner", m.Name)
		}
	}
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	// One member down: the others keep quorum.
	nodes[0].Close()
	pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
	_, err = cli.Put(pctx, "k", "v2")
	pcancel()
	if err != nil {
		t.Fatalf("write with one of three members down: %v", err)
	}
	// It restarts from its data, without joining again.
	again, err := StartCluster(ctx, ClusterConfig{Name: "n1", DataDir: cfgs[0].DataDir, ClientAddr: cfgs[0].ClientAddr, PeerAddr: cfgs[0].PeerAddr, Secret: testSecret}, log)
	if err != nil {
		t.Fatalf("restart n1: %v", err)
	}
	t.Cleanup(again.Close)
	c1, err := Connect(again.Endpoints[:1], again.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	gctx, gcancel := context.WithTimeout(ctx, 20*time.Second)
	resp, err := c1.Get(gctx, "k")
	gcancel()
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v2" {
		t.Fatalf("restarted member reads %v, %v", resp, err)
	}

	// A certificate of another cluster's CA is refused.
	other, err := WriteTLS(filepath.Join(dir, "other"), []byte("another-secret-of-16+"), "intruder", []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	otc, err := other.Config()
	if err != nil {
		t.Fatal(err)
	}
	otc.RootCAs = nodes[1].TLS.RootCAs // even trusting our servers
	bad, err := Connect(nodes[1].Endpoints[:1], otc)
	if err == nil {
		defer bad.Close()
		bctx, bcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = bad.Get(bctx, "k")
		bcancel()
	}
	if err == nil {
		t.Fatal("a client with another cluster's certificate read etcd")
	}
}
