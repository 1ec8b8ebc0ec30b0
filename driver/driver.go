package driver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// Driver answers Docker's volume plugin requests with calls on a node's
// api.Service. It is an http.Handler (see handler.go); Serve puts it on a
// unix socket.
type Driver struct {
	svc       api.Service
	nodeID    string        // this node's ID: a volume attached here has a Mountpoint
	ownerWait time.Duration // see New
	log       *slog.Logger
	mounts    *mounts
}

// Options are a driver's settings. The zero value keeps mount IDs in
// memory and fails a Mount of a volume held elsewhere at once.
type Options struct {
	// OwnerWait: a Mount of a volume attached on another node that is
	// still up tries again for up to this long before it fails. An
	// orchestrator may notice a dead node before the cluster does (Swarm
	// with a 1 s heartbeat does), and a Mount that failed at once would
	// have its task rejected and rescheduled, seconds later, instead of
	// taking the volume over as soon as the dead node's lease lapses. The
	// daemon passes its lease TTL and a second.
	OwnerWait time.Duration
	// MountsFile, if set, is where the Docker mount IDs using each volume
	// on this node are kept, so that they outlive a restart of the daemon
	// (the daemon keeps it in its data dir).
	MountsFile string
}

// New returns a driver serving svc, the service of the node whose ID is
// nodeID. A nil log discards the driver's messages. A mounts file that
// cannot be read is reported in the log and started afresh: the volumes
// it named stay attached until detached by hand, as before the file.
func New(svc api.Service, nodeID string, opts Options, log *slog.Logger) *Driver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "docker-plugin")
	d := &Driver{svc: svc, nodeID: nodeID, ownerWait: opts.OwnerWait, log: log, mounts: newMounts()}
	if opts.MountsFile != "" {
		onSave := func(err error) {
			log.Warn("docker mount IDs not saved: a container using the volume will not detach it if the daemon restarts first", "err", err)
		}
		m, err := loadMounts(&refsFile{path: opts.MountsFile}, onSave)
		if err != nil {
			log.Error("docker mount IDs of an earlier run not read; starting without them", "err", err)
		}
		d.mounts = m
	}
	return d
}

// volume is a volume as Docker's Get and List want it.
type volume struct {
	Name       string
	Mountpoint string         `json:",omitempty"`
	CreatedAt  string         `json:",omitempty"`
	Status     map[string]any `json:",omitempty"`
}

// create creates a volume from a name or inline spec and --opt options.
func (d *Driver) create(ctx context.Context, name string, opts map[string]string) error {
	v, err := ParseSpec(name, opts)
	if err != nil {
		return err
	}
	got, err := d.svc.CreateVolume(ctx, v, api.CreateOptions{})
	if err != nil {
		return explain("create", v.Name, err)
	}
	d.log.Info("volume created", "volume", got.Name, "docker_name", name, "size", got.Size, "repl", got.Repl, "fs", got.FS)
	return nil
}

// remove deletes a volume that no container uses, here or elsewhere. A
// volume that is already gone is removed.
func (d *Driver) remove(ctx context.Context, name string) error {
	vol, err := volumeName(name)
	if err != nil {
		return err
	}
	return d.mounts.locked(vol, func(ids []string) error {
		if len(ids) > 0 {
			return fmt.Errorf("volume %q is mounted by %d container(s) on this node; stop them (docker ps --filter volume=%s) and remove it again: %w", vol, len(ids), name, api.ErrInUse)
		}
		v, err := d.svc.InspectVolume(ctx, vol)
		if errors.Is(err, api.ErrNotFound) {
			d.log.Info("removed volume was already gone", "volume", vol)
			return nil
		} else if err != nil {
			return explain("remove", vol, err)
		}
		if a := v.Attachment; a != nil {
			return fmt.Errorf("volume %q is attached on node %s (mounted at %s): stop the container using it there, or run 'ballast volume detach %s' on %s if none does, then remove it again: %w",
				vol, a.Node, a.MountPath, vol, a.Node, api.ErrInUse)
		}
		if err := d.svc.DeleteVolume(ctx, vol); err != nil && !errors.Is(err, api.ErrNotFound) {
			return explain("remove", vol, err)
		}
		d.log.Info("volume removed", "volume", vol)
		return nil
	})
}

// legacyID stands for the mount ID of callers that send none: Docker
// before 1.12's protocol, and dvdcli, through which DC/OS's Mesos isolator
// mounts dvdi volumes. Such a caller counts mounts itself (Mesos mounts
// for every container and unmounts once, after the last), so all of its
// mounts of a volume are one: a repeated Mount is idempotent and its one
// Unmount releases them.
const legacyID = "(no mount ID)"

// mount attaches the volume on this node for the mount ID, unless another
// ID already did, and returns its mount path.
func (d *Driver) mount(ctx context.Context, name, id string) (string, error) {
	vol, err := volumeName(name)
	if err != nil {
		return "", err
	}
	id = cmp.Or(id, legacyID)
	if isInline(name) {
		if _, err := d.inspect(ctx, "mount", name); err != nil {
			return "", err
		}
	}
	path, err := d.mounts.mount(vol, id, func() (string, error) {
		a, err := d.attach(ctx, vol)
		if err != nil {
			return "", explain("mount", vol, err)
		}
		d.log.Info("volume attached for docker", "volume", vol, "mount", a.MountPath, "id", id)
		return a.MountPath, nil
	}, func() (string, bool, error) {
		v, err := d.svc.InspectVolume(ctx, vol)
		if err != nil {
			return "", false, explain("mount", vol, err)
		}
		if a := v.Attachment; a != nil && a.Node == d.nodeID {
			return a.MountPath, true, nil
		}
		d.log.Info("mount IDs kept from before a restart dropped: the volume is no longer attached here", "volume", vol)
		return "", false, nil
	})
	if err != nil {
		return "", err
	}
	d.log.Debug("volume mounted", "volume", vol, "mount", path, "id", id)
	return path, nil
}

// ownerPoll is how often a Mount asks again whether a volume's other
// node is down.
const ownerPoll = 250 * time.Millisecond

// attach attaches vol on this node. While another node holds it and is
// up, it tries again every ownerPoll for up to d.ownerWait (see New).
func (d *Driver) attach(ctx context.Context, vol string) (*api.Attachment, error) {
	deadline := time.Now().Add(d.ownerWait)
	for waited := false; ; waited = true {
		a, err := d.svc.AttachVolume(ctx, vol, api.AttachOptions{})
		if err == nil && waited {
			d.log.Info("volume taken over once its other node's lease lapsed", "volume", vol)
		}
		if !errors.Is(err, api.ErrInUse) || time.Now().Add(ownerPoll).After(deadline) {
			return a, err
		}
		if !waited {
			d.log.Info("volume attached on another node that is up; waiting for it to be declared down", "volume", vol, "for", d.ownerWait, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up waiting: %w)", err, ctx.Err())
		case <-time.After(ownerPoll):
		}
	}
}

// unmount releases the mount ID; the last one detaches the volume. An
// unknown ID succeeds: without a mounts file, or with one that could not
// be saved, the IDs of an earlier run are not known.
func (d *Driver) unmount(ctx context.Context, name, id string) error {
	vol, err := volumeName(name)
	if err != nil {
		return err
	}
	id = cmp.Or(id, legacyID)
	known, err := d.mounts.unmount(vol, id, func() error {
		err := d.svc.DetachVolume(ctx, vol)
		switch {
		case errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrInUse):
			// Gone, or taken over by another node: nothing is left to release here.
			d.log.Warn("volume was not attached here any more at its last unmount", "volume", vol, "err", err)
			return nil
		case err != nil:
			return fmt.Errorf("detach volume %q after its last container stopped: %w; run 'ballast volume detach %s' to try again", vol, err, vol)
		}
		d.log.Info("volume detached, no container uses it", "volume", vol)
		return nil
	})
	if !known {
		d.log.Info("unmount of a mount ID this daemon does not know (mounted before a restart, its record lost?); the volume stays attached", "volume", vol, "id", id)
	}
	return err
}

// path returns where the volume is mounted on this node, or "" when it is
// not.
func (d *Driver) path(ctx context.Context, name string) (string, error) {
	v, err := d.inspect(ctx, "inspect", name)
	if err != nil {
		return "", err
	}
	return d.mountpoint(v), nil
}

// get describes one volume, under the name Docker asked for (which may be
// an inline spec: Docker keeps volumes by that name).
func (d *Driver) get(ctx context.Context, name string) (*volume, error) {
	v, err := d.inspect(ctx, "inspect", name)
	if err != nil {
		return nil, err
	}
	out := d.toDocker(v)
	out.Name = name
	return &out, nil
}

// inspect looks up the volume a name Docker sends stands for. An inline
// spec must describe the volume as it is: one that asks for another size,
// repl, fs, ... is an error naming the difference (as a create of an
// existing name is), never a silent use of a volume other than the one
// asked for.
func (d *Driver) inspect(ctx context.Context, op, name string) (*api.Volume, error) {
	vol, err := volumeName(name)
	if err != nil {
		return nil, err
	}
	v, err := d.svc.InspectVolume(ctx, vol)
	if err != nil {
		return nil, explain(op, vol, err)
	}
	if isInline(name) {
		if err := lookupSpec(name, v.Volume); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// list describes every volume of the cluster.
func (d *Driver) list(ctx context.Context) ([]volume, error) {
	vs, err := d.svc.ListVolumes(ctx)
	if err != nil {
		return nil, explain("list", "", err)
	}
	out := make([]volume, 0, len(vs))
	for i := range vs {
		v := d.toDocker(&vs[i])
		v.Status = nil // docker volume ls shows names only
		out = append(out, v)
	}
	return out, nil
}

func (d *Driver) mountpoint(v *api.Volume) string {
	if a := v.Attachment; a != nil && a.Node == d.nodeID {
		return a.MountPath
	}
	return ""
}

func (d *Driver) toDocker(v *api.Volume) volume {
	in := 0
	var replicas []string
	for _, r := range v.Replicas {
		var notes []string
		if r.Local {
			notes = append(notes, "local")
		}
		if r.InSync {
			in++
		} else {
			notes = append(notes, "not in sync")
		}
		s := r.Node
		if len(notes) > 0 {
			s += " (" + strings.Join(notes, ", ") + ")"
		}
		replicas = append(replicas, s)
	}
	status := map[string]any{
		"size":     spec.FormatSize(v.Size),
		"used":     spec.FormatSize(v.Allocated),
		"fs":       v.FS,
		"repl":     v.Repl,
		"in_sync":  fmt.Sprintf("%d/%d", in, len(v.Replicas)),
		"replicas": strings.Join(replicas, ", "),
		"state":    v.State,
	}
	if v.FromSnapshot != "" {
		status["snapshot"] = v.FromSnapshot
	}
	if a := v.Attachment; a != nil {
		status["attached"] = a.Node
	}
	out := volume{Name: v.Name, Mountpoint: d.mountpoint(v), Status: status}
	if !v.Created.IsZero() {
		out.CreatedAt = v.Created.Format(time.RFC3339)
	}
	return out
}

// explain adds to a service error what a Docker user can do about it. The
// service's messages already name the volume and the node.
func explain(op, vol string, err error) error {
	switch {
	case errors.Is(err, api.ErrNotFound) && op == "mount":
		return fmt.Errorf("%w; create it first: docker volume create -d ballast --opt size=10G %s", err, vol)
	case errors.Is(err, api.ErrInUse) && op == "mount":
		return fmt.Errorf("%w (with Docker: stop the container using it on that node; its last unmount detaches it)", err)
	case errors.Is(err, api.ErrNoCapacity):
		return fmt.Errorf("%w; free space or add pool disks ('ballast pool list' shows them), or ask for a smaller size or fewer replicas", err)
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return fmt.Errorf("%s volume %q did not finish before Docker gave up: %w", op, vol, err)
	case errors.Is(err, spec.ErrInvalid) || errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrExists) ||
		errors.Is(err, api.ErrInUse) || errors.Is(err, api.ErrConflict):
		return err
	}
	if vol == "" {
		return fmt.Errorf("ballast could not %s volumes: %w ('ballast cluster status' shows the daemon's health)", op, err)
	}
	return fmt.Errorf("ballast could not %s volume %q: %w ('ballast cluster status' shows the daemon's health)", op, vol, err)
}
