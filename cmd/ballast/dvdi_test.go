package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/deploy/dcos/dvdi"
	"github.com/ballast-io/ballast/driver"
	"github.com/ballast-io/ballast/pool/api"
)

// What DC/OS sends a Docker volume plugin for a Marathon "dvdi" external
// volume, from the sources (Marathon's and Mesos's part is in the doc of
// package deploy/dcos/dvdi):
//
//   - Mesos's docker/volume isolator runs `dvdcli mount --volumedriver=D
//     --volumename=N --volumeopts=K=V...` for every container that uses
//     the volume, and `dvdcli unmount --volumedriver=D --volumename=N` when
//     the last container on the agent using it is cleaned up
//     (apache/mesos src/slave/containerizer/mesos/isolators/docker/volume/
//     driver.cpp and isolator.cpp). It bind-mounts the path dvdcli prints.
//   - DC/OS builds dvdcli from rexray/dvdcli at 7dede14 (dcos/dcos
//     packages/dvdcli/buildinfo.json), which talks to plugins with Docker
//     1.11.0's client (vendor/github.com/docker/docker, Gopkg.lock). One
//     dvdcli run looks the plugin up (/run/docker/plugins/D.sock, then
//     D.spec/D.json in /etc/docker/plugins and /usr/lib/docker/plugins:
//     pkg/plugins/discovery.go) and activates it, then (dvdcli/commands.go):
//     mount: VolumeDriver.Get {"Name"}; only if that fails,
//     VolumeDriver.Create {"Name", "Opts"} with the --volumeopts; then
//     VolumeDriver.Mount {"Name"}, printing the Mountpoint.
//     unmount: VolumeDriver.Get {"Name"}, then VolumeDriver.Unmount {"Name"}.
//     Mount and Unmount carry no ID: Docker 1.11's Volume interface is
//     Mount() and Unmount() (volume/volume.go), its proxy sends Name only
//     (volume/drivers/proxy.go). The ID came with Docker 1.12.
//     Name is the Name of Get's answer when Get succeeded
//     (volume/drivers/adapter.go), the asked name otherwise.
//   - Every call is a POST of the JSON-encoded request (json.Encoder: a
//     trailing newline; no body at all for Plugin.Activate) to /METHOD,
//     with the header Accept: application/vnd.docker.plugins.v1.2+json and
//     no Content-Type (pkg/plugins/client.go, pkg/plugins/transport), over
//     one keep-alive connection per run, without compression (go-connections
//     sockets_unix.go). Go's net/http writes the socket path it is given as
//     host as an empty Host header (cleanHost cuts at '/'). A reply other
//     than 200 is an error, with the message from its Err; on 200 dvdcli
//     decodes the reply and fails on a non-empty Err.

// TestDVDIReplay replays, over the Docker plugin socket of a real daemon,
// the requests DC/OS makes for the broker's volume of the Marathon group
// deploy/dcos/dvdi/sensors-group.json: a task starting (the volume is
// created with the group's options, attached and mounted), writing, ending
// (unmounted and detached), starting again (mounted again, no create) and
// reading its data back, ending again; and tasks whose volume options the
// plugin refuses, which create nothing.
func TestDVDIReplay(t *testing.T) {
	g, err := dvdi.Load(filepath.Join("..", "..", "deploy", "dcos", "dvdi", "sensors-group.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ext dvdi.External
	for _, a := range g.Apps {
		if a.ID == "/sensors/broker" && len(a.DVDIVolumes()) == 1 {
			ext = a.DVDIVolumes()[0].External
		}
	}
	if ext.Name == "" || ext.Driver() != "ballast" {
		t.Fatalf("no ballast dvdi volume for /sensors/broker in the group: %+v", ext)
	}
	sock := filepath.Join(t.TempDir(), ext.Driver()+".sock")
	d := startDaemon(t, "--docker-socket", sock)
	ctx := d.ctx()

	// The task starts: dvdcli mount, with the options Marathon and Mesos
	// derive from the group.
	args := ext.MountArgs()
	opts, err := dvdi.DvdcliOpts(args)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Mesos runs: dvdcli %s", strings.Join(args, " "))
	mnt := dvdcliMount(t, sock, ext.Name, opts, true)
	v, err := d.client.InspectVolume(ctx, ext.Name)
	if err != nil {
		t.Fatal(err)
	}
	want, err := driver.ParseSpec(ext.Name, opts)
	if err != nil {
		t.Fatal(err)
	}
	if v.Size != want.Size || v.Repl != want.Repl || v.FS != "ext4" || len(v.Replicas) != want.Repl || want.Repl != 2 {
		t.Errorf("created volume %+v, want %d bytes, ext4, %d replicas (the group's dvdi/size and dvdi/repl: %v)", v.Volume, want.Size, want.Repl, opts)
	}
	if v.Attachment == nil || v.Attachment.Node != d.node || v.Attachment.MountPath != mnt {
		t.Fatalf("after Mount the volume is attached %+v, want on %s at %s", v.Attachment, d.node, mnt)
	}
	if m := mountsMatching(t, func(mp, fstype, _ string) bool { return mp == mnt && fstype == "ext4" }); len(m) == 0 {
		t.Fatalf("Mountpoint %s is not an ext4 mount", mnt)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	writeSynced(t, filepath.Join(mnt, "data", "readings"), data)

	// The task ends: dvdcli unmount, the volume's last user on the agent.
	dvdcliUnmount(t, sock, ext.Name)
	checkReleased(t, d, ext.Name, mnt)

	// It starts again (restarted, or rescheduled onto this agent): Get
	// finds the volume, so no Create; Mount attaches it again.
	mnt = dvdcliMount(t, sock, ext.Name, opts, false)
	got, err := os.ReadFile(filepath.Join(mnt, "data", "readings"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the restart the task reads %d bytes (%v), not the %d it wrote", len(got), err, len(data))
	}
	dvdcliUnmount(t, sock, ext.Name)
	checkReleased(t, d, ext.Name, mnt)

	// Volume options the plugin refuses: the task fails at Create with the
	// plugin's message (Mesos shows dvdcli's stderr), and nothing is made.
	five := int64(5)
	for _, tc := range []struct {
		what string
		ext  dvdi.External
		want []string
	}{
		{"an option Ballast does not have",
			dvdi.External{Name: "sensors-bad", Options: map[string]string{"dvdi/driver": "ballast", "dvdi/size": "1G", "dvdi/iops": "150"}},
			[]string{`unknown option "iops"`, "valid options are size, repl, fs"}},
		{"Marathon's external.size, a bare number",
			dvdi.External{Name: "sensors-bad", Size: &five, Options: map[string]string{"dvdi/driver": "ballast"}},
			[]string{`size 5B`, "16MiB minimum", "write 5G for 5 GiB"}},
	} {
		t.Run(tc.what, func(t *testing.T) {
			opts, err := dvdi.DvdcliOpts(tc.ext.MountArgs())
			if err != nil {
				t.Fatal(err)
			}
			c := newDvdcli(t, sock)
			defer c.close()
			if st, _ := c.call("VolumeDriver.Get", nameReq{tc.ext.Name}); st == http.StatusOK {
				t.Fatalf("Get %s succeeded before any create", tc.ext.Name)
			}
			st, res := c.call("VolumeDriver.Create", createReq{tc.ext.Name, opts})
			if st == http.StatusOK && res.Err == "" {
				t.Fatalf("Create %s with %v succeeded", tc.ext.Name, opts)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.Err, w) {
					t.Errorf("Create %s with %v: %q, want it to say %q", tc.ext.Name, opts, res.Err, w)
				}
			}
			t.Logf("Create with %v: HTTP %d, %s", opts, st, res.Err)
			if _, err := d.client.InspectVolume(ctx, tc.ext.Name); !errors.Is(err, api.ErrNotFound) {
				t.Errorf("after the refused Create, inspect %s: %v, want not found", tc.ext.Name, err)
			}
		})
	}
	vs, err := d.client.ListVolumes(ctx)
	if err != nil || len(vs) != 1 {
		t.Errorf("volumes at the end: %d (%v), want only %s", len(vs), err, ext.Name)
	}
}

// dvdcliMount replays `dvdcli mount` for volume name with options opts;
// fresh says the volume does not exist yet. It returns the Mountpoint.
func dvdcliMount(t *testing.T, sock, name string, opts map[string]string, fresh bool) string {
	t.Helper()
	c := newDvdcli(t, sock)
	defer c.close()
	st, res := c.call("VolumeDriver.Get", nameReq{name})
	switch {
	case fresh && st == http.StatusOK:
		t.Fatalf("Get %s succeeded before the volume was created: %+v", name, res.Volume)
	case fresh:
		if res.Err == "" {
			t.Fatalf("Get %s: HTTP %d without an Err", name, st)
		}
		if st, res = c.call("VolumeDriver.Create", createReq{name, opts}); st != http.StatusOK || res.Err != "" {
			t.Fatalf("Create %s with %v: HTTP %d: %s", name, opts, st, res.Err)
		}
	case st != http.StatusOK || res.Err != "" || res.Volume == nil:
		t.Fatalf("Get %s: HTTP %d: %s %+v (dvdcli would Create it again)", name, st, res.Err, res.Volume)
	default:
		if res.Volume.Name != name {
			t.Fatalf("Get %s answers Name %q, which dvdcli would mount instead", name, res.Volume.Name)
		}
		if res.Volume.Mountpoint != "" {
			t.Errorf("Get %s of a detached volume answers Mountpoint %q", name, res.Volume.Mountpoint)
		}
	}
	st, res = c.call("VolumeDriver.Mount", nameReq{name})
	if st != http.StatusOK || res.Err != "" {
		t.Fatalf("Mount %s (no ID, as dvdcli sends it): HTTP %d: %s", name, st, res.Err)
	}
	if res.Mountpoint == "" || !filepath.IsAbs(res.Mountpoint) {
		t.Fatalf("Mount %s: Mountpoint %q, want an absolute path for Mesos to bind-mount", name, res.Mountpoint)
	}
	t.Logf("dvdcli mount printed %s; the calls: %s", res.Mountpoint, strings.Join(c.log, ", "))
	return res.Mountpoint
}

// dvdcliUnmount replays `dvdcli unmount` for volume name.
func dvdcliUnmount(t *testing.T, sock, name string) {
	t.Helper()
	c := newDvdcli(t, sock)
	defer c.close()
	st, res := c.call("VolumeDriver.Get", nameReq{name})
	if st != http.StatusOK || res.Err != "" || res.Volume == nil {
		t.Fatalf("Get %s: HTTP %d: %s", name, st, res.Err)
	}
	if st, res = c.call("VolumeDriver.Unmount", nameReq{res.Volume.Name}); st != http.StatusOK || res.Err != "" {
		t.Fatalf("Unmount %s: HTTP %d: %s", name, st, res.Err)
	}
	t.Logf("dvdcli unmount: %s", strings.Join(c.log, ", "))
}

// checkReleased checks that the volume is detached and its mount gone.
func checkReleased(t *testing.T, d *daemon, name, mnt string) {
	t.Helper()
	v, err := d.client.InspectVolume(d.ctx(), name)
	if err != nil {
		t.Fatal(err)
	}
	if v.Attachment != nil {
		t.Fatalf("after dvdcli unmount the volume is still attached: %+v", v.Attachment)
	}
	if m := mountsMatching(t, func(mp, _, _ string) bool { return mp == mnt }); len(m) > 0 {
		t.Fatalf("after dvdcli unmount %s is still mounted: %v", mnt, m)
	}
	if l := loopsBacking(name); len(l) > 0 {
		t.Fatalf("after dvdcli unmount loop devices still back the volume: %v", l)
	}
}

func writeSynced(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// The request bodies of Docker 1.11's volume driver proxy.
type nameReq struct{ Name string }

type createReq struct {
	Name string
	Opts map[string]string
}

// pluginReply is every field dvdcli reads from a reply.
type pluginReply struct {
	Err        string
	Implements []string
	Mountpoint string
	Volume     *struct{ Name, Mountpoint string }
}

// dvdcli is one run of dvdcli: a connection to the plugin socket on which
// it activated the plugin.
type dvdcli struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	log  []string // the calls made, with their status
}

func newDvdcli(t *testing.T, sock string) *dvdcli {
	t.Helper()
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &dvdcli{t: t, conn: conn, r: bufio.NewReader(conn)}
	st, res := c.call("Plugin.Activate", nil)
	if st != http.StatusOK || len(res.Implements) != 1 || res.Implements[0] != "VolumeDriver" {
		t.Fatalf("Plugin.Activate: HTTP %d, %+v; dvdcli needs Implements [VolumeDriver]", st, res)
	}
	return c
}

func (c *dvdcli) close() { c.conn.Close() }

// call sends one request as dvdcli writes it and reads the reply.
func (c *dvdcli) call(method string, args any) (int, pluginReply) {
	c.t.Helper()
	var body bytes.Buffer
	if args != nil {
		if err := json.NewEncoder(&body).Encode(args); err != nil {
			c.t.Fatal(err)
		}
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST /%s HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: %d\r\n", method, body.Len())
	fmt.Fprintf(&req, "Accept: application/vnd.docker.plugins.v1.2+json\r\n\r\n")
	req.Write(body.Bytes())
	// dvdcli's client has no timeout of its own; Mesos kills it after 120 s.
	c.conn.SetDeadline(time.Now().Add(120 * time.Second))
	if _, err := c.conn.Write(req.Bytes()); err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("%s: reading the reply: %v", method, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatalf("%s: reading the reply: %v", method, err)
	}
	var res pluginReply
	if err := json.Unmarshal(b, &res); err != nil {
		c.t.Fatalf("%s: HTTP %d, a reply dvdcli cannot decode (%v): %q", method, resp.StatusCode, err, b)
	}
	c.log = append(c.log, fmt.Sprintf("%s %d", method, resp.StatusCode))
	return resp.StatusCode, res
}
