package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Restoring is how far the restore filling volume Volume is, in bytes of
// the volume. It is a record of its own (restores/VOLUME), written each
// second while the restore runs without a guard, so that the volume's
// record, on which secret and passphrase changes guard, stays still.
type Restoring struct {
	Volume string `json:"volume"`
	Backup string `json:"backup"`
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
}

func restoringKey(vol string) string { return Prefix + "restores/" + vol }

// SetRestoring writes r, replacing what was there.
func (s *Store) SetRestoring(ctx context.Context, r *Restoring) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, restoringKey(r.Volume), string(b)); err != nil {
		return fmt.Errorf("etcd put %s: %w", restoringKey(r.Volume), err)
	}
	return nil
}

// Restoring reads the progress of the restore filling vol; nil when none
// runs.
func (s *Store) Restoring(ctx context.Context, vol string) (*Restoring, error) {
	r, _, err := get[Restoring](ctx, s, restoringKey(vol))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return r, err
}

// ClearRestoring deletes vol's restore progress; none is no error.
func (s *Store) ClearRestoring(ctx context.Context, vol string) error {
	if _, err := s.cli.Delete(ctx, restoringKey(vol)); err != nil {
		return fmt.Errorf("etcd delete %s: %w", restoringKey(vol), err)
	}
	return nil
}
