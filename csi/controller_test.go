package csi

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

func TestParseParameters(t *testing.T) {
	v, err := ParseParameters(map[string]string{"repl": "3", "fs": "XFS", "labels": "zone=a,rack=r1", "avoid": "disk=hdd", "min_in_sync": "2",
		"locality": "None", "csi.storage.k8s.io/pvc/name": "data-0"})
	if err != nil || v.Repl != 3 || v.FS != "xfs" || v.Pin != "zone=a,rack=r1" || v.Avoid != "disk=hdd" || v.MinInSync != 2 || v.Locality != "none" {
		t.Fatalf("ParseParameters = %+v, %v", v, err)
	}
	if v, err := ParseParameters(map[string]string{"encrypted": "TRUE", "secret_key": "db"}); err != nil || !v.Encrypted || v.SecretKey != "db" {
		t.Fatalf("encrypted: %+v, %v", v, err)
	}
	if v, err := ParseParameters(nil); err != nil || v != (spec.Volume{}) {
		t.Fatalf("no parameters: %+v, %v", v, err)
	}
	for in, want := range map[string]string{
		"repl=0": "1 to 5", "repl=x": "1 to 5", "fs=btrfs": "ext4 or xfs", "size=1G": `unknown parameter "size"`,
		"pin=zone": "key=value", "avoid=": "empty", "min_in_sync=3,repl=2": "above repl", "pin=zone=a,labels=zone=a": "give one",
		"locality=always": "use best-effort or none",
		"encrypted=maybe": "use true or false", "encrypted=true,secret_key=a/b": "secret_key",
	} {
		params := map[string]string{}
		for _, kv := range strings.SplitAfterN(in, ",", -1) {
			k, v, _ := strings.Cut(strings.TrimSuffix(kv, ","), "=")
			params[k] = v
		}
		_, err := ParseParameters(params)
		if err == nil || !errors.Is(err, spec.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseParameters(%v) = %v; want an invalid error saying %q", params, err, want)
		}
	}
}

func TestVolumeSize(t *testing.T) {
	for _, c := range []struct {
		req, limit int64
		fs         string
		want       int64
		code       codes.Code
	}{
		{0, 0, "", 1 << 30, codes.OK},
		{0, 100 << 20, "", 100 << 20, codes.OK},
		{1, 0, "", 16 << 20, codes.OK},
		{1, 0, "xfs", 300 << 20, codes.OK},
		{(1 << 30) + 1, 0, "", (1 << 30) + 4096, codes.OK},
		{1 << 20, 8 << 20, "", 0, codes.OutOfRange},
		{(1 << 30) + 1, (1 << 30) + 2, "", 0, codes.OutOfRange},
		{2 << 30, 1 << 30, "", 0, codes.InvalidArgument},
		{-1, 0, "", 0, codes.InvalidArgument},
		{2 << 50, 0, "", 0, codes.OutOfRange},
	} {
		got, err := volumeSize(&csipb.CapacityRange{RequiredBytes: c.req, LimitBytes: c.limit}, c.fs)
		if got != c.want || status.Code(err) != c.code {
			t.Errorf("volumeSize(%d, %d, %q) = %d, %v; want %d, %s", c.req, c.limit, c.fs, got, err, c.want, c.code)
		}
	}
}

func TestExpandSize(t *testing.T) {
	for _, c := range []struct {
		req, limit, size int64
		want             int64
		code             codes.Code
	}{
		{2 << 30, 0, 1 << 30, 2 << 30, codes.OK},
		{1 << 20, 0, 1 << 30, 1 << 30, codes.OK}, // never shrinks
		{(1 << 30) + 1, 0, 1 << 30, (1 << 30) + 4096, codes.OK},
		{(1 << 30) + 1, (1 << 30) + 5000, 1 << 30, (1 << 30) + 4096, codes.OK},
		{(1 << 30) + 1, (1 << 30) + 2, 1 << 30, 0, codes.OutOfRange},
		{1 << 20, 2 << 20, 1 << 30, 0, codes.OutOfRange},
		{3, 2, 1 << 30, 0, codes.InvalidArgument},
	} {
		got, err := expandSize(&csipb.CapacityRange{RequiredBytes: c.req, LimitBytes: c.limit}, c.size)
		if got != c.want || status.Code(err) != c.code {
			t.Errorf("expandSize(%d, %d, %d) = %d, %v; want %d, %s", c.req, c.limit, c.size, got, err, c.want, c.code)
		}
	}
}

func TestBallastName(t *testing.T) {
	if got := ballastName("", "pvc-1234"); got != "pvc-1234" {
		t.Errorf("a valid name changed: %q", got)
	}
	long := strings.Repeat("x", 128)
	got := ballastName("", long)
	if got != ballastName("", long) || spec.ValidateName("volume name", got) != nil || !strings.HasPrefix(got, "csi-") {
		t.Errorf("long name: %q", got)
	}
	if ballastName("", "a/b") == ballastName("", "a/c") {
		t.Error("two invalid names gave the same Ballast name")
	}
	if got := ballastName(cloneSnapshotPrefix, strings.Repeat("v", 64)); spec.ValidateName("snapshot name", got) != nil || !strings.HasPrefix(got, cloneSnapshotPrefix) {
		t.Errorf("clone snapshot name: %q", got)
	}
}

func TestPage(t *testing.T) {
	items := []string{"a", "b", "c", "d", "e"}
	id := func(s string) string { return s }
	var got []string
	token := ""
	for range 10 {
		p, next, err := page(items, id, token, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p...)
		if next == "" {
			break
		}
		token = next
	}
	if strings.Join(got, "") != "abcde" {
		t.Fatalf("pages gave %v", got)
	}
	// A page token stays right when the entry it names is deleted.
	_, next, _ := page(items, id, "", 2)
	rest, _, err := page([]string{"a", "c", "d", "e"}, id, next, 0)
	if err != nil || strings.Join(rest, "") != "cde" {
		t.Fatalf("after deleting b: %v, %v", rest, err)
	}
	if _, _, err := page(items, id, "invalid-token", 0); status.Code(err) != codes.Aborted {
		t.Fatalf("bad token: %v; want ABORTED", err)
	}
	if _, _, err := page(items, id, "", -1); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("negative max_entries: %v", err)
	}
}

func TestSegments(t *testing.T) {
	n := api.Node{ID: "n1", Labels: map[string]string{"zone": "a", "example.com/rack": "r1"}}
	seg := segments(n)
	if len(seg) != 3 || seg["topology.ballast.io/node"] != "n1" || seg["topology.ballast.io/zone"] != "a" || seg["example.com/rack"] != "r1" {
		t.Fatalf("segments = %v", seg)
	}
	if !inTopology(n, nil) || !inTopology(n, &csipb.Topology{Segments: map[string]string{"topology.ballast.io/zone": "a"}}) ||
		inTopology(n, &csipb.Topology{Segments: map[string]string{"topology.ballast.io/zone": "b"}}) {
		t.Fatal("inTopology")
	}
}

func TestVolumeHealth(t *testing.T) {
	reps := func(inSync ...bool) []api.Replica {
		var out []api.Replica
		for i, in := range inSync {
			out = append(out, api.Replica{ID: fmt.Sprintf("r%d", i), Node: fmt.Sprintf("n%d", i), InSync: in})
		}
		return out
	}
	up := map[string]bool{"n0": true, "n1": true, "n2": true}
	for _, c := range []struct {
		v    api.Volume
		up   map[string]bool
		want string
	}{
		{api.Volume{Volume: spec.Volume{Name: "v", Repl: 3, MinInSync: 1}, Replicas: reps(true, true, true)}, up, ""},
		{api.Volume{Volume: spec.Volume{Name: "v", Repl: 3, MinInSync: 1}, Replicas: reps(true, false, true)}, up, "DEGRADED/ReplicasOutOfSync"},
		{api.Volume{Volume: spec.Volume{Name: "v", Repl: 3, MinInSync: 2}, Replicas: reps(true, false, false)}, up, "INACCESSIBLE/BelowMinInSync DEGRADED/ReplicasOutOfSync"},
		{api.Volume{Volume: spec.Volume{Name: "v", Repl: 2, MinInSync: 1}, Replicas: reps(true, true)}, map[string]bool{"n0": true}, "DEGRADED/ReplicaNodeDown"},
		{api.Volume{Volume: spec.Volume{Name: "v", Repl: 1, MinInSync: 1}, Replicas: reps(true)}, map[string]bool{}, "INACCESSIBLE/ReplicaNodesDown"},
	} {
		var got []string
		for _, s := range volumeHealth(&c.v, c.up).GetHealthStatuses() {
			got = append(got, s.GetStatus().String()+"/"+s.GetReason())
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("health of %+v = %v; want %q", c.v.Replicas, got, c.want)
		}
	}
}

func TestSocketPath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"unix:///run/csi.sock": "/run/csi.sock", "unix:/run/csi.sock": "/run/csi.sock", "/run/x/../csi.sock": "/run/csi.sock",
		"csi.sock": filepath.Join(wd, "csi.sock"), "unix:./x/csi.sock": filepath.Join(wd, "x/csi.sock"),
	} {
		if got, err := SocketPath(in); got != want || err != nil {
			t.Errorf("SocketPath(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"tcp://127.0.0.1:10000", "unix://csi.sock", "unix:", ""} {
		if _, err := SocketPath(bad); err == nil {
			t.Errorf("SocketPath(%q) accepted", bad)
		}
	}
}

// FuzzParameters: whatever a StorageClass holds, ParseParameters never
// panics, refuses with spec.ErrInvalid, and what it accepts makes a volume
// spec Normalize accepts.
func FuzzParameters(f *testing.F) {
	f.Add("repl", "2", "fs", "xfs", "labels", "zone=a")
	f.Add("min_in_sync", "3", "repl", "2", "avoid", "rack=r2,zone=b")
	f.Add("pin", "zone=a", "labels", "zone=a", "csi.storage.k8s.io/fstype", "ext4")
	f.Add("size", "1G", "", "", "", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		params := map[string]string{k1: v1, k2: v2, k3: v3}
		v, err := ParseParameters(params)
		if err != nil {
			if !errors.Is(err, spec.ErrInvalid) {
				t.Fatalf("ParseParameters(%v): %v does not wrap spec.ErrInvalid", params, err)
			}
			return
		}
		v.Name, v.Size = "v", 1<<30
		if err := v.Normalize(); err != nil {
			t.Fatalf("ParseParameters(%v) = %+v, which Normalize refuses: %v", params, v, err)
		}
	})
}

// FuzzPageToken: a token this driver made names the entry it was made
// from; any other string is ABORTED, never a panic or a wrong page.
func FuzzPageToken(f *testing.F) {
	for _, s := range []string{"p1:YQ", "invalid-token", "p1:", "p1:!!", "", "p1:dm9sQHNuYXA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utf8.ValidString(s) && s != "" {
			got, err := decodeToken(encodeToken(s))
			if err != nil || got != s {
				t.Fatalf("round trip of %q: %q, %v", s, got, err)
			}
		}
		id, err := decodeToken(s)
		if err != nil {
			if status.Code(err) != codes.Aborted {
				t.Fatalf("decodeToken(%q): %v; want ABORTED", s, err)
			}
			return
		}
		if id == "" || encodeToken(id) != s {
			t.Fatalf("decodeToken(%q) = %q, which encodes as %q", s, id, encodeToken(id))
		}
		items := []string{"a", "b", "c"}
		p, _, err := page(items, func(x string) string { return x }, s, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range p {
			if x <= id {
				t.Fatalf("page after %q holds %q", id, x)
			}
		}
	})
}
