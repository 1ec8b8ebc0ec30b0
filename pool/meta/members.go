package meta

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// MaxMembers is how many nodes run an etcd member: the first three to
// form the cluster, so that the metadata survives the loss of any one.
// Later nodes are etcd clients only.
const MaxMembers = 3

// JoinRequest is what a new node asks of a node of the cluster it joins.
type JoinRequest struct {
	// PeerURL is where the new node's etcd member would listen for its
	// peers, should it become one.
	PeerURL string `json:"peer_url"`
}

// JoinAnswer tells a new node how to reach the cluster's etcd.
type JoinAnswer struct {
	// Member is set when the new node was added as an etcd member: it
	// starts one with InitialCluster (state "existing").
	Member         bool   `json:"member"`
	InitialCluster string `json:"initial_cluster,omitempty"`
	// Endpoints are the client URLs of the members.
	Endpoints []string `json:"endpoints"`
}

var admitMu sync.Mutex // one join at a time through this process

// AdmitMember lets node name into the cluster whose etcd cli reaches: as
// an etcd member while there are fewer than MaxMembers, else as a client.
// A node that was added before but never started its member (it died
// while joining) gets the same answer again.
func AdmitMember(ctx context.Context, cli *clientv3.Client, name string, req JoinRequest) (JoinAnswer, error) {
	admitMu.Lock()
	defer admitMu.Unlock()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return JoinAnswer{}, fmt.Errorf("list etcd members: %w", err)
	}
	members := list.Members
	ans := JoinAnswer{Endpoints: clientURLs(members)}
	var mine *etcdserverpb.Member
	for _, m := range members {
		switch {
		case req.PeerURL != "" && slices.Contains(m.PeerURLs, req.PeerURL):
			if m.Name != "" && m.Name != name {
				return JoinAnswer{}, fmt.Errorf("peer URL %s belongs to etcd member %s already", req.PeerURL, m.Name)
			}
			mine = m
		case m.Name == name:
			return JoinAnswer{}, fmt.Errorf("an etcd member named %s exists already at %v: a node that lost its data dir must be removed first (etcdctl member remove %x)",
				name, m.PeerURLs, m.ID)
		}
	}
	if mine == nil {
		if len(members) >= MaxMembers || req.PeerURL == "" {
			return ans, nil // a client
		}
		// As a learner, so that the cluster keeps its quorum while the
		// new member starts and catches up; it promotes itself then.
		// etcd refuses a change until every voter has been connected for
		// a few seconds (just after the last join, say): wait for that.
		resp, err := cli.MemberAddAsLearner(ctx, []string{req.PeerURL})
		for i := 0; errors.Is(err, rpctypes.ErrUnhealthy) && i < 60; i++ {
			select {
			case <-ctx.Done():
				return JoinAnswer{}, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			resp, err = cli.MemberAddAsLearner(ctx, []string{req.PeerURL})
		}
		if err != nil {
			return JoinAnswer{}, fmt.Errorf("add etcd member %s at %s: %w", name, req.PeerURL, err)
		}
		members, mine = resp.Members, resp.Member
	}
	ans.Member = true
	ans.InitialCluster = initialCluster(members, mine.ID, name)
	return ans, nil
}

// promoteSelf makes the member id, a learner that joined, a voting
// member, retrying while it is still catching up with the leader.
func promoteSelf(ctx context.Context, cli *clientv3.Client, id uint64) error {
	for {
		list, err := cli.MemberList(ctx)
		if err == nil {
			i := slices.IndexFunc(list.Members, func(m *etcdserverpb.Member) bool { return m.ID == id })
			if i >= 0 && !list.Members[i].IsLearner {
				return nil
			}
			_, err = cli.MemberPromote(ctx, id)
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote etcd member %x from learner: %w (last: %v)", id, ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func clientURLs(members []*etcdserverpb.Member) []string {
	var urls []string
	for _, m := range members {
		urls = append(urls, m.ClientURLs...)
	}
	return urls
}

// initialCluster is etcd's --initial-cluster for the members, naming the
// one with ID id (not started yet, so nameless) name.
func initialCluster(members []*etcdserverpb.Member, id uint64, name string) string {
	var parts []string
	for _, m := range members {
		n := m.Name
		if m.ID == id {
			n = name
		}
		for _, u := range m.PeerURLs {
			parts = append(parts, n+"="+u)
		}
	}
	return strings.Join(parts, ",")
}
