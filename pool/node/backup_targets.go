package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/backup"
	"github.com/ballast-io/ballast/pool/crypt"
	"github.com/ballast-io/ballast/pool/meta"
	"github.com/ballast-io/ballast/pool/spec"
)

var _ api.BackupService = (*Node)(nil)

// targetSealName is what a target's credentials are sealed to, so that
// they open only as that target's.
func targetSealName(name string) string { return "backup-target/" + name }

// AddBackupTarget checks that the target answers with its credentials,
// then records it with the credentials sealed under the cluster secret.
func (n *Node) AddBackupTarget(ctx context.Context, s api.BackupTargetSpec) (*api.BackupTarget, error) {
	if err := spec.ValidateName("backup target name", s.Name); err != nil {
		return nil, err
	}
	var cred backup.Credentials
	if len(s.Credentials) > 0 {
		var err error
		if cred, err = backup.ParseCredentials(s.Credentials); err != nil {
			return nil, fmt.Errorf("backup target %s: %w: %w", s.Name, api.ErrInvalid, err)
		}
	}
	cfg := backup.Config{URL: s.URL, Endpoint: s.Endpoint, Region: s.Region, Insecure: s.Insecure}
	if err := cfg.Validate(cred); err != nil {
		return nil, fmt.Errorf("backup target %s: %w: %w", s.Name, api.ErrInvalid, err)
	}
	t, err := backup.Open(cfg, cred)
	if err != nil {
		return nil, fmt.Errorf("backup target %s: %w", s.Name, err)
	}
	if err := checkTarget(ctx, t); err != nil {
		return nil, fmt.Errorf("backup target %s: %w", s.Name, err)
	}
	rec := &meta.BackupTarget{Name: s.Name, URL: s.URL, Endpoint: s.Endpoint, Region: s.Region, Insecure: s.Insecure, Created: time.Now().UTC()}
	if cred != (backup.Credentials{}) {
		b, _ := json.Marshal(cred)
		if rec.Nonce, rec.Sealed, err = crypt.Seal(n.cfg.Secret, targetSealName(s.Name), b); err != nil {
			return nil, fmt.Errorf("backup target %s: %w: %w", s.Name, err, errors.ErrUnsupported)
		}
	}
	if err := n.meta.Commit(ctx, meta.PutBackupTarget(rec, 0)); errors.Is(err, meta.ErrConflict) {
		return nil, fmt.Errorf("backup target %q exists: %w", s.Name, api.ErrExists)
	} else if err != nil {
		return nil, err
	}
	n.log.Info("backup target added", "target", s.Name, "url", s.URL, "endpoint", s.Endpoint)
	return targetToAPI(rec), nil
}

// checkTarget lists the target's backups: it answers, and the
// credentials open it.
func checkTarget(ctx context.Context, t backup.Target) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := t.Check(ctx); err != nil {
		return targetErr(err)
	}
	if _, err := t.List(ctx, "backups/"); err != nil {
		return targetErr(err)
	}
	return nil
}

// targetErr gives a target's error the service's sentinel.
func targetErr(err error) error {
	switch {
	case errors.Is(err, backup.ErrDenied):
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	case errors.Is(err, backup.ErrNotExist):
		return fmt.Errorf("%w: %w", api.ErrNotFound, err)
	case errors.Is(err, backup.ErrInvalid):
		return fmt.Errorf("%w: %w", api.ErrInvalid, err)
	}
	return err
}

func targetToAPI(t *meta.BackupTarget) *api.BackupTarget {
	return &api.BackupTarget{Name: t.Name, URL: t.URL, Endpoint: t.Endpoint, Region: t.Region, Insecure: t.Insecure, Created: t.Created}
}

// ListBackupTargets lists the targets, without their credentials.
func (n *Node) ListBackupTargets(ctx context.Context) ([]api.BackupTarget, error) {
	recs, err := n.meta.BackupTargets(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.BackupTarget, 0, len(recs))
	for i := range recs {
		out = append(out, *targetToAPI(&recs[i]))
	}
	return out, nil
}

// DeleteBackupTarget forgets a target no backup is running to. The
// backups in it stay there, and their records go.
func (n *Node) DeleteBackupTarget(ctx context.Context, name string) error {
	if err := spec.ValidateName("backup target name", name); err != nil {
		return err
	}
	_, rev, err := n.meta.BackupTarget(ctx, name)
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("backup target %q does not exist: %w", name, api.ErrNotFound)
	} else if err != nil {
		return err
	}
	recs, err := n.meta.Backups(ctx)
	if err != nil {
		return err
	}
	alive, err := n.aliveNow(ctx)
	if err != nil {
		return err
	}
	ops := []meta.Op{meta.DeleteBackupTarget(name, rev)}
	for _, b := range recs {
		if b.Target != name {
			continue
		}
		if runningOn(&b, alive) {
			return fmt.Errorf("backup %s to target %q is running on node %s: %w", b.ID, name, b.Node, api.ErrInUse)
		}
		_, brev, err := n.meta.Backup(ctx, b.ID)
		if err != nil {
			return err
		}
		ops = append(ops, meta.DeleteBackup(b.ID, brev))
	}
	if err := n.meta.Commit(ctx, ops...); err != nil {
		return conflict("delete backup target "+name, err)
	}
	n.log.Info("backup target deleted", "target", name)
	return nil
}

// openTarget reads target name's record and opens it.
func (n *Node) openTarget(ctx context.Context, name string) (backup.Target, *meta.BackupTarget, meta.Rev, error) {
	rec, rev, err := n.meta.BackupTarget(ctx, name)
	if errors.Is(err, meta.ErrNotFound) {
		return nil, nil, 0, fmt.Errorf("backup target %q does not exist (ballast backup target add): %w", name, api.ErrNotFound)
	} else if err != nil {
		return nil, nil, 0, err
	}
	var cred backup.Credentials
	if rec.Sealed != nil {
		b, err := crypt.Open(n.cfg.Secret, targetSealName(name), rec.Nonce, rec.Sealed)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("backup target %s: credentials: %w", name, err)
		}
		if err := json.Unmarshal(b, &cred); err != nil {
			return nil, nil, 0, fmt.Errorf("backup target %s: credentials: %w", name, err)
		}
	}
	t, err := backup.Open(backup.Config{URL: rec.URL, Endpoint: rec.Endpoint, Region: rec.Region, Insecure: rec.Insecure}, cred)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("backup target %s: %w", name, err)
	}
	return t, rec, rev, nil
}
