package driver

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// options lists what Create accepts, as --opt KEY=VALUE or inline in the
// name; they mean what the CLI's volume create flags mean.
var options = []string{"size", "repl", "fs", "snapshot", "pin", "avoid", "min_in_sync", "locality", "encrypted", "secret_key"}

// aliases are other spellings of an option.
var aliases = map[string]string{"labels": "pin"}

// labelOption says whether an option holds a label list; given twice, its
// values add up.
func labelOption(key string) bool { return key == "pin" || key == "avoid" }

const optionHelp = "size, repl, fs, snapshot, pin (or labels), avoid, min_in_sync, locality, encrypted, secret_key"

// isInline reports whether a volume name is an inline spec such as
// "size=10G,repl=2,name=pgdata". Plain names cannot contain '='.
func isInline(name string) bool { return strings.Contains(name, "=") }

// ParseSpec turns what docker volume create (or docker run -v) sends into a
// normalized volume spec. name is either a volume name or an inline spec,
// KEY=VALUE pairs separated by ',' or ';' that must include name=VOLUME
// ("size=10G,repl=2,name=pgdata"); opts are the --opt options. Both take
// size, repl, fs, snapshot (VOL@SNAP), pin (alias labels), avoid,
// min_in_sync, locality (best-effort or none), encrypted (true or false)
// and secret_key, meaning what the CLI's volume create flags mean; an option
// given in both places must have the same value in both. In an inline spec, pin= and avoid= may be
// repeated to ask for several labels ("pin=zone=a,pin=rack=r1"), since ','
// separates the pairs. A volume needs a size unless it is a snapshot's
// clone. Every error wraps spec.ErrInvalid.
func ParseSpec(name string, opts map[string]string) (spec.Volume, error) {
	volName := name
	var inline map[string]string
	if isInline(name) {
		var err error
		if inline, err = parseInline(name); err != nil {
			return spec.Volume{}, err
		}
		volName = inline["name"]
		delete(inline, "name")
	}
	if _, ok := opts["name"]; ok {
		return spec.Volume{}, invalid("option name is not an --opt: give the volume name as NAME (or name=NAME in an inline spec)")
	}
	pairs := make([][2]string, 0, len(opts))
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		pairs = append(pairs, [2]string{k, opts[k]})
	}
	given, err := collect("--opt", pairs, false)
	if err != nil {
		return spec.Volume{}, err
	}
	fromName, err := toVolume(inline)
	if err != nil {
		return spec.Volume{}, err
	}
	fromOpts, err := toVolume(given)
	if err != nil {
		return spec.Volume{}, err
	}
	v, err := merge(fromName, fromOpts, inline, given)
	if err != nil {
		return spec.Volume{}, err
	}
	v.Name = volName
	if err := spec.ValidateName("volume name", v.Name); err != nil {
		return spec.Volume{}, err
	}
	if v.Size == 0 && v.FromSnapshot == "" {
		return spec.Volume{}, invalid("volume %q needs a size: add --opt size=10G (or size=10G to an inline spec)", v.Name)
	}
	if v.Encrypted && v.SecretKey == "" && v.FromSnapshot == "" {
		// Docker shows a volume's options (docker volume inspect): no
		// passphrase goes through them, only a secret's name.
		return spec.Volume{}, invalid("encrypted volume %q needs a secret key: add --opt secret_key=NAME, a cluster secret holding its passphrase (ballast secret set NAME); Docker shows a volume's options, so a passphrase cannot be given here", v.Name)
	}
	if err := v.Normalize(); err != nil {
		return spec.Volume{}, err
	}
	return v, nil
}

// lookupSpec checks an inline spec that names a volume Docker looks up
// (Get, Path, Mount), not creates, against that volume: nil when every
// option the spec states matches the volume (api.MatchSpec), else the error
// naming the difference. Options it leaves out may have come from --opt at
// create, which Docker does not send again, so they are taken as the
// volume's.
func lookupSpec(name string, have spec.Volume) error {
	kv, err := parseInline(name)
	if err != nil {
		return err
	}
	delete(kv, "name")
	stated, err := toVolume(kv)
	if err != nil {
		return err
	}
	// api.MatchSpec takes a zero size, repl, fs, min-in-sync or locality
	// as open, but Normalize (which validates and normalizes what is
	// stated) would default repl, fs, min-in-sync and locality and refuse a
	// zero size; so every option left out is the volume's.
	want := spec.Volume{
		Name:         have.Name,
		Size:         cmp.Or(stated.Size, have.Size),
		Repl:         cmp.Or(stated.Repl, have.Repl),
		FS:           cmp.Or(stated.FS, have.FS),
		FromSnapshot: cmp.Or(stated.FromSnapshot, have.FromSnapshot),
		Pin:          cmp.Or(stated.Pin, have.Pin),
		Avoid:        cmp.Or(stated.Avoid, have.Avoid),
		MinInSync:    cmp.Or(stated.MinInSync, have.MinInSync),
		Locality:     cmp.Or(stated.Locality, have.Locality),
		Encrypted:    stated.Encrypted || have.Encrypted,
		SecretKey:    cmp.Or(stated.SecretKey, have.SecretKey),
	}
	if err := want.Normalize(); err != nil {
		return err
	}
	return api.MatchSpec(have, want)
}

// volumeName returns the Ballast volume a name Docker sends stands for: the
// name itself, or an inline spec's name= value.
func volumeName(name string) (string, error) {
	if name == "" {
		return "", invalid("the request has no volume Name")
	}
	if isInline(name) {
		kv, err := parseInline(name)
		if err != nil {
			return "", err
		}
		name = kv["name"]
	}
	if err := spec.ValidateName("volume name", name); err != nil {
		return "", err
	}
	return name, nil
}

// parseInline splits an inline spec into its options, with its name under
// "name".
func parseInline(s string) (map[string]string, error) {
	var pairs [][2]string
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, invalid("inline spec %q: %q is not KEY=VALUE", s, part)
		}
		pairs = append(pairs, [2]string{k, v})
	}
	kv, err := collect(fmt.Sprintf("inline spec %q", s), pairs, true)
	if err != nil {
		return nil, err
	}
	if kv["name"] == "" {
		return nil, invalid("inline spec %q has no name=; add name=VOLUME, e.g. size=10G,repl=2,name=pgdata", s)
	}
	return kv, nil
}

// collect checks option keys (naming every unknown one), resolves aliases
// and joins repeated label options. Other options given twice must agree.
// "name" is accepted only when withName is set (an inline spec).
func collect(where string, pairs [][2]string, withName bool) (map[string]string, error) {
	out := map[string]string{}
	var unknown []string
	for _, p := range pairs {
		k, v := strings.TrimSpace(p[0]), strings.TrimSpace(p[1])
		if a, ok := aliases[k]; ok {
			k = a
		}
		if !slices.Contains(options, k) && !(k == "name" && withName) {
			unknown = append(unknown, strconv.Quote(p[0]))
			continue
		}
		if v == "" {
			return nil, invalid("option %s in %s is empty", p[0], where)
		}
		old, seen := out[k]
		switch {
		case !seen:
			out[k] = v
		case labelOption(k):
			out[k] = old + "," + v
		case old != v:
			return nil, invalid("option %s is given twice in %s, as %q and %q", k, where, old, v)
		}
	}
	if len(unknown) > 0 {
		word := "option"
		if len(unknown) > 1 {
			word = "options"
		}
		return nil, invalid("unknown %s %s in %s; valid options are %s", word, strings.Join(unknown, ", "), where, optionHelp)
	}
	return out, nil
}

// toVolume parses collected options into the fields of a spec.Volume,
// without defaults or cross-checks (Normalize does those).
func toVolume(kv map[string]string) (spec.Volume, error) {
	var v spec.Volume
	var err error
	if s, ok := kv["size"]; ok {
		if v.Size, err = spec.ParseSize(s); err != nil {
			return v, err
		}
	}
	if s, ok := kv["repl"]; ok {
		if v.Repl, err = count("repl", s, 5); err != nil {
			return v, err
		}
	}
	if s, ok := kv["min_in_sync"]; ok {
		if v.MinInSync, err = count("min_in_sync", s, 5); err != nil {
			return v, err
		}
	}
	if s, ok := kv["snapshot"]; ok {
		if _, _, err := spec.ParseSnapshotRef(s); err != nil {
			return v, err
		}
		v.FromSnapshot = s
	}
	v.FS = strings.ToLower(kv["fs"])
	if s, ok := kv["locality"]; ok {
		v.Locality = strings.ToLower(s)
		if !spec.ValidLocality(v.Locality) {
			return v, invalid("option locality=%q must be %s", s, strings.Join(spec.Localities, " or "))
		}
	}
	if s, ok := kv["encrypted"]; ok {
		if v.Encrypted, err = strconv.ParseBool(s); err != nil {
			return v, invalid("option encrypted=%q must be true or false", s)
		}
	}
	v.SecretKey = kv["secret_key"]
	v.Pin, v.Avoid = kv["pin"], kv["avoid"]
	for _, l := range []string{"pin", "avoid"} {
		if _, err := spec.ParseLabels(kv[l]); err != nil {
			return v, fmt.Errorf("%s labels: %w", l, err)
		}
	}
	return v, nil
}

// count parses a small positive number.
func count(key, s string, most int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > most {
		return 0, invalid("option %s=%q must be a number from 1 to %d", key, s, most)
	}
	return n, nil
}

// merge combines what the inline spec and the --opt options asked for; an
// option set in both must mean the same in both.
func merge(a, b spec.Volume, rawA, rawB map[string]string) (spec.Volume, error) {
	conflict := func(key string) error {
		return invalid("option %s is %q in the inline spec but %q as --opt; give it once, or the same in both", key, rawA[key], rawB[key])
	}
	v := a
	if b.Size != 0 {
		if a.Size != 0 && a.Size != b.Size {
			return v, conflict("size")
		}
		v.Size = b.Size
	}
	if b.Repl != 0 {
		if a.Repl != 0 && a.Repl != b.Repl {
			return v, conflict("repl")
		}
		v.Repl = b.Repl
	}
	if b.MinInSync != 0 {
		if a.MinInSync != 0 && a.MinInSync != b.MinInSync {
			return v, conflict("min_in_sync")
		}
		v.MinInSync = b.MinInSync
	}
	if b.Locality != "" {
		if a.Locality != "" && a.Locality != b.Locality {
			return v, conflict("locality")
		}
		v.Locality = b.Locality
	}
	if b.FS != "" {
		if a.FS != "" && a.FS != b.FS {
			return v, conflict("fs")
		}
		v.FS = b.FS
	}
	if b.FromSnapshot != "" {
		if a.FromSnapshot != "" && a.FromSnapshot != b.FromSnapshot {
			return v, conflict("snapshot")
		}
		v.FromSnapshot = b.FromSnapshot
	}
	if _, ok := rawB["encrypted"]; ok {
		if _, inA := rawA["encrypted"]; inA && a.Encrypted != b.Encrypted {
			return v, conflict("encrypted")
		}
		v.Encrypted = b.Encrypted
	}
	if b.SecretKey != "" {
		if a.SecretKey != "" && a.SecretKey != b.SecretKey {
			return v, conflict("secret_key")
		}
		v.SecretKey = b.SecretKey
	}
	if b.Pin != "" {
		if a.Pin != "" && !spec.SameLabels(a.Pin, b.Pin) {
			return v, conflict("pin")
		}
		v.Pin = b.Pin
	}
	if b.Avoid != "" {
		if a.Avoid != "" && !spec.SameLabels(a.Avoid, b.Avoid) {
			return v, conflict("avoid")
		}
		v.Avoid = b.Avoid
	}
	return v, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", spec.ErrInvalid, fmt.Sprintf(format, args...))
}
