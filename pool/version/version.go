// Package version tells which build of Ballast is running: the version set
// at link time (-ldflags "-X github.com/ballast-io/ballast/pool/version.Version=v1.2.3"),
// else the VCS revision Go stamped into the binary.
package version

import "runtime/debug"

// Version is set at link time for releases.
var Version = ""

// String returns the version of this build, never empty.
func String() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	rev, dirty := "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev-" + rev
}
