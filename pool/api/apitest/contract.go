package apitest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// Contract checks the rules of api.Service that the Docker plugin and the
// CSI driver depend on, on svc, the service of node node with nothing
// else on it: the fake's own test runs it on a Fake, cmd/ballast's on a
// real daemon, so the fake keeps to what the daemon does. It creates its
// volumes under names starting "ct-" and deletes them.
//
// The rules: a create of an existing name with the same spec returns the
// volume, with another spec fails with ErrExists, with an invalid spec
// fails with ErrInvalid and creates nothing; a clone takes its snapshot's
// size, filesystem and repl, and another size is ErrInvalid; a volume
// grows (rounded up to 4 KiB) and never shrinks; snapshots of a name
// already taken are ErrExists; a snapshot or volume with clones, or an
// attached volume, cannot be deleted (ErrInUse); an attach here is
// idempotent and is what inspect shows, and one asking for the other kind
// (raw block or filesystem) is ErrInUse; a detach of a volume attached
// nowhere does nothing; anything missing is ErrNotFound. An encrypted
// volume needs an existing secret or a passphrase given per call (then
// with every attach; a missing or wrong one is ErrInvalid and attaches
// nothing); a secret is set once, and one a volume uses cannot be
// deleted; a clone of an encrypted volume is encrypted, with its key.
func Contract(t *testing.T, svc api.Service, node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	is := func(what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
	}
	ok := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	const size = 32 << 20
	base := spec.Volume{Name: "ct-v", Size: size, Repl: 1, FS: "ext4"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, name := range []string{"ct-clone", "ct-v", "ct-enc-clone", "ct-enc", "ct-pp-clone", "ct-pp"} {
			svc.DetachVolume(ctx, name)
			svc.DeleteVolume(ctx, name)
		}
		svc.DeleteSecret(ctx, "ct-key")
	})

	// Create.
	bad := base
	bad.Size = -1
	_, err := svc.CreateVolume(ctx, bad, api.CreateOptions{})
	is("create with a negative size", err, api.ErrInvalid)
	_, err = svc.InspectVolume(ctx, base.Name)
	is("inspect after a refused create", err, api.ErrNotFound)
	v, err := svc.CreateVolume(ctx, base, api.CreateOptions{})
	ok("create", err)
	if v.Size != size || v.Repl != 1 || v.FS != "ext4" || len(v.Replicas) != 1 {
		t.Fatalf("created %+v", v.Volume)
	}
	again, err := svc.CreateVolume(ctx, base, api.CreateOptions{})
	ok("create again with the same spec", err)
	if again.ID != v.ID {
		t.Fatalf("create again: ID %s, first %s", again.ID, v.ID)
	}
	bigger := base
	bigger.Size = 2 * size
	_, err = svc.CreateVolume(ctx, bigger, api.CreateOptions{})
	is("create again with another spec", err, api.ErrExists)
	list, err := svc.ListVolumes(ctx)
	ok("list", err)
	if !slices.ContainsFunc(list, func(x api.Volume) bool { return x.Name == base.Name }) {
		t.Fatal("list misses the volume")
	}

	// Snapshot, then grow: the clone has the snapshot's size.
	_, err = svc.CreateSnapshot(ctx, base.Name, "s1")
	ok("snapshot", err)
	_, err = svc.CreateSnapshot(ctx, base.Name, "s1")
	is("snapshot again", err, api.ErrExists)
	_, err = svc.CreateSnapshot(ctx, "ct-nope", "s1")
	is("snapshot of a missing volume", err, api.ErrNotFound)
	grown, err := svc.ResizeVolume(ctx, base.Name, 2*size+1)
	ok("grow", err)
	if grown.Size != 2*size+4096 {
		t.Fatalf("grown to %d, want %d (rounded up to 4 KiB)", grown.Size, 2*size+4096)
	}
	_, err = svc.ResizeVolume(ctx, base.Name, size)
	is("shrink", err, api.ErrInvalid)
	same, err := svc.ResizeVolume(ctx, base.Name, 2*size+1)
	ok("grow to the size it has, before rounding", err)
	if same.Size != grown.Size {
		t.Fatalf("size %d after asking for what it had, want %d", same.Size, grown.Size)
	}
	_, err = svc.ResizeVolume(ctx, "ct-nope", size)
	is("grow a missing volume", err, api.ErrNotFound)
	snaps, err := svc.ListSnapshots(ctx, base.Name)
	ok("list snapshots", err)
	if len(snaps) != 1 || snaps[0].Name != "s1" || snaps[0].Size != size {
		t.Fatalf("snapshots %+v", snaps)
	}
	_, err = svc.ListSnapshots(ctx, "ct-nope")
	is("snapshots of a missing volume", err, api.ErrNotFound)

	// Clone.
	clone := spec.Volume{Name: "ct-clone", FromSnapshot: base.Name + "@s1"}
	_, err = svc.CreateVolume(ctx, spec.Volume{Name: "ct-clone", FromSnapshot: base.Name + "@nope"}, api.CreateOptions{})
	is("clone of a missing snapshot", err, api.ErrNotFound)
	_, err = svc.CreateVolume(ctx, spec.Volume{Name: "ct-clone", FromSnapshot: base.Name + "@s1", Size: 2 * size}, api.CreateOptions{})
	is("clone of another size", err, api.ErrInvalid)
	c, err := svc.CreateVolume(ctx, clone, api.CreateOptions{})
	ok("clone", err)
	if c.Size != size || c.FS != "ext4" || c.Repl != 1 {
		t.Fatalf("clone %+v, want the snapshot's size, fs and repl", c.Volume)
	}
	is("delete a snapshot with clones", svc.DeleteSnapshot(ctx, base.Name, "s1"), api.ErrInUse)
	is("delete a volume with clones", svc.DeleteVolume(ctx, base.Name), api.ErrInUse)

	// Attach and detach.
	a, err := svc.AttachVolume(ctx, clone.Name, api.AttachOptions{})
	ok("attach", err)
	if a.Node != node || a.MountPath == "" {
		t.Fatalf("attachment %+v, want one on %s with a mount path", a, node)
	}
	a2, err := svc.AttachVolume(ctx, clone.Name, api.AttachOptions{})
	ok("attach again", err)
	if a2.Epoch != a.Epoch || a2.MountPath != a.MountPath {
		t.Fatalf("attach again: %+v, first %+v", a2, a)
	}
	_, err = svc.AttachVolume(ctx, clone.Name, api.AttachOptions{Block: true})
	is("attach again as a raw block device", err, api.ErrInUse)
	got, err := svc.InspectVolume(ctx, clone.Name)
	ok("inspect", err)
	if got.Attachment == nil || got.Attachment.Node != node {
		t.Fatalf("inspect shows attachment %+v", got.Attachment)
	}
	is("delete an attached volume", svc.DeleteVolume(ctx, clone.Name), api.ErrInUse)
	ok("detach", svc.DetachVolume(ctx, clone.Name))
	ok("detach again", svc.DetachVolume(ctx, clone.Name))
	_, err = svc.AttachVolume(ctx, "ct-nope", api.AttachOptions{})
	is("attach a missing volume", err, api.ErrNotFound)

	// Encryption: a volume encrypted under a secret, which it then keeps
	// from being deleted; its clone is encrypted too.
	_, err = svc.CreateVolume(ctx, spec.Volume{Name: "ct-enc", Size: size, Encrypted: true}, api.CreateOptions{})
	is("encrypted without a secret key", err, api.ErrInvalid)
	_, err = svc.CreateVolume(ctx, spec.Volume{Name: "ct-enc", Size: size, Encrypted: true, SecretKey: "ct-nokey"}, api.CreateOptions{})
	is("encrypted under a missing secret", err, api.ErrNotFound)
	_, err = svc.SetSecret(ctx, "ct-key", []byte("correct horse battery staple"))
	ok("set a secret", err)
	_, err = svc.SetSecret(ctx, "ct-key", []byte("another"))
	is("set it again", err, api.ErrExists)
	_, err = svc.SetSecret(ctx, "ct-empty", nil)
	is("set an empty secret", err, api.ErrInvalid)
	enc, err := svc.CreateVolume(ctx, spec.Volume{Name: "ct-enc", Size: size, Encrypted: true, SecretKey: "ct-key"}, api.CreateOptions{})
	ok("create encrypted", err)
	if !enc.Encrypted || enc.SecretKey != "ct-key" {
		t.Fatalf("created %+v, want encrypted under ct-key", enc.Volume)
	}
	_, err = svc.CreateSnapshot(ctx, "ct-enc", "s")
	ok("snapshot an encrypted volume", err)
	encClone, err := svc.CreateVolume(ctx, spec.Volume{Name: "ct-enc-clone", FromSnapshot: "ct-enc@s"}, api.CreateOptions{})
	ok("clone an encrypted volume", err)
	if !encClone.Encrypted || encClone.SecretKey != "ct-key" {
		t.Fatalf("clone %+v, want encrypted as its source", encClone.Volume)
	}
	secrets, err := svc.ListSecrets(ctx)
	ok("list secrets", err)
	if i := slices.IndexFunc(secrets, func(s api.Secret) bool { return s.Name == "ct-key" }); i < 0 || len(secrets[i].UsedBy) != 2 {
		t.Fatalf("secrets %+v, want ct-key used by the volume and its clone", secrets)
	}
	is("delete a secret in use", svc.DeleteSecret(ctx, "ct-key"), api.ErrInUse)
	_, err = svc.ChangeSecret(ctx, "ct-nokey", []byte("x"))
	is("change a missing secret", err, api.ErrNotFound)
	_, err = svc.ChangeSecret(ctx, "ct-key", nil)
	is("change a secret to nothing", err, api.ErrInvalid)
	_, err = svc.ChangeSecret(ctx, "ct-key", []byte("a new passphrase, rotated"))
	ok("change a secret in use", err)
	_, err = svc.AttachVolume(ctx, "ct-enc-clone", api.AttachOptions{})
	ok("attach an encrypted clone after the change", err)
	ok("detach it", svc.DetachVolume(ctx, "ct-enc-clone"))
	for _, name := range []string{"ct-enc-clone", "ct-enc"} {
		ok("delete "+name, svc.DeleteVolume(ctx, name))
	}
	ok("delete the secret", svc.DeleteSecret(ctx, "ct-key"))
	is("delete it again", svc.DeleteSecret(ctx, "ct-key"), api.ErrNotFound)
	perCallPassphrase(ctx, t, svc, size)

	// Delete.
	ok("delete the clone", svc.DeleteVolume(ctx, clone.Name))
	ok("delete the snapshot", svc.DeleteSnapshot(ctx, base.Name, "s1"))
	is("delete it again", svc.DeleteSnapshot(ctx, base.Name, "s1"), api.ErrNotFound)
	ok("delete", svc.DeleteVolume(ctx, base.Name))
	is("delete again", svc.DeleteVolume(ctx, base.Name), api.ErrNotFound)
	_, err = svc.InspectVolume(ctx, base.Name)
	is("inspect a deleted volume", err, api.ErrNotFound)
}

// perCallPassphrase checks an encrypted volume whose passphrase is given
// with the create and every attach, and its clone, which keeps its key.
func perCallPassphrase(ctx context.Context, t *testing.T, svc api.Service, size int64) {
	t.Helper()
	check := func(what string, err, want error) {
		t.Helper()
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
	}
	pass := []byte("a passphrase given per call")
	with := func(p string) api.CreateOptions { return api.CreateOptions{Passphrase: []byte(p)} }
	enc := spec.Volume{Name: "ct-pp", Size: size, Encrypted: true}
	_, err := svc.CreateVolume(ctx, spec.Volume{Name: "ct-pp", Size: size, Encrypted: true, SecretKey: "ct-other"}, with(string(pass)))
	check("create with a passphrase and a secret key", err, api.ErrInvalid)
	_, err = svc.CreateVolume(ctx, spec.Volume{Name: "ct-pp", Size: size}, with(string(pass)))
	check("create in clear with a passphrase", err, api.ErrInvalid)
	_, err = svc.CreateVolume(ctx, enc, with(strings.Repeat("x", api.MaxPassphrase+1)))
	check("create with a passphrase too long", err, api.ErrInvalid)
	v, err := svc.CreateVolume(ctx, enc, with(string(pass)))
	check("create with a passphrase", err, nil)
	if !v.Encrypted || v.SecretKey != "" {
		t.Fatalf("created %+v, want encrypted with no secret key", v.Volume)
	}
	_, err = svc.CreateVolume(ctx, enc, with("not the passphrase"))
	check("create it again with another passphrase", err, api.ErrInvalid)
	_, err = svc.CreateVolume(ctx, enc, with(string(pass)))
	check("create it again with the passphrase", err, nil)
	_, err = svc.AttachVolume(ctx, "ct-pp", api.AttachOptions{})
	check("attach without the passphrase", err, api.ErrInvalid)
	_, err = svc.AttachVolume(ctx, "ct-pp", api.AttachOptions{Passphrase: []byte("not the passphrase")})
	check("attach with a wrong passphrase", err, api.ErrInvalid)
	if v, err := svc.InspectVolume(ctx, "ct-pp"); err != nil || v.Attachment != nil {
		t.Fatalf("after refused attaches: %+v, %v; want it attached nowhere", v, err)
	}
	_, err = svc.AttachVolume(ctx, "ct-pp", api.AttachOptions{Passphrase: pass})
	check("attach with the passphrase", err, nil)
	_, err = svc.AttachVolume(ctx, "ct-pp", api.AttachOptions{})
	check("attach it again, attached, without the passphrase", err, api.ErrInvalid)
	_, err = svc.AttachVolume(ctx, "ct-pp", api.AttachOptions{Passphrase: pass})
	check("attach it again, attached, with the passphrase", err, nil)
	_, err = svc.CreateSnapshot(ctx, "ct-pp", "s1")
	check("snapshot it", err, nil)
	check("detach it", svc.DetachVolume(ctx, "ct-pp"), nil)
	clone := spec.Volume{Name: "ct-pp-clone", FromSnapshot: "ct-pp@s1"}
	_, err = svc.CreateVolume(ctx, clone, with("not the passphrase"))
	check("clone with a wrong passphrase", err, api.ErrInvalid)
	c, err := svc.CreateVolume(ctx, clone, api.CreateOptions{})
	check("clone", err, nil)
	if !c.Encrypted || c.SecretKey != "" {
		t.Fatalf("clone %+v, want encrypted with the passphrase of its source", c.Volume)
	}
	_, err = svc.AttachVolume(ctx, "ct-pp-clone", api.AttachOptions{})
	check("attach the clone without the passphrase", err, api.ErrInvalid)
	_, err = svc.AttachVolume(ctx, "ct-pp-clone", api.AttachOptions{Passphrase: pass})
	check("attach the clone with its source's passphrase", err, nil)
	check("detach the clone", svc.DetachVolume(ctx, "ct-pp-clone"), nil)

	// A change of the passphrase: the old one must open the key, and
	// from then on only the new one does; the clone keeps its own.
	next := []byte("the next passphrase")
	check("change the passphrase, given a wrong one", svc.ChangePassphrase(ctx, "ct-pp", []byte("not the passphrase"), next), api.ErrInvalid)
	check("change the passphrase to nothing", svc.ChangePassphrase(ctx, "ct-pp", pass, nil), api.ErrInvalid)
	check("change the passphrase of a volume in clear", svc.ChangePassphrase(ctx, "ct-v", pass, next), api.ErrInvalid)
	check("change the passphrase", svc.ChangePassphrase(ctx, "ct-pp", pass, next), nil)
	_, err = svc.AttachVolume(ctx, "ct-pp", api.AttachOptions{Passphrase: pass})
	check("attach with the passphrase before the change", err, api.ErrInvalid)
	_, err = svc.AttachVolume(ctx, "ct-pp", api.AttachOptions{Passphrase: next})
	check("attach with the new passphrase", err, nil)
	check("detach it again", svc.DetachVolume(ctx, "ct-pp"), nil)
	_, err = svc.AttachVolume(ctx, "ct-pp-clone", api.AttachOptions{Passphrase: pass})
	check("attach the clone with the passphrase it had", err, nil)
	check("detach the clone again", svc.DetachVolume(ctx, "ct-pp-clone"), nil)
	check("delete the clone", svc.DeleteVolume(ctx, "ct-pp-clone"), nil)
	check("delete the snapshot", svc.DeleteSnapshot(ctx, "ct-pp", "s1"), nil)
	check("delete the volume", svc.DeleteVolume(ctx, "ct-pp"), nil)
}
