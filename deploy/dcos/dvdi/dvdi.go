// Package dvdi holds a Marathon app group that runs the sensor workload on
// DC/OS with its broker and CQL server on Ballast volumes through DC/OS's
// dvdi external volumes (the Docker volume plugin, driven by Mesos's
// docker/volume isolator and dvdcli), and a model of what DC/OS makes of
// such a volume on its way to the plugin, which the tests use to send the
// plugin what DC/OS would.
//
// The way from a Marathon volume to the plugin, as the sources say:
//
//   - Marathon (mesosphere/marathon,
//     src/main/scala/mesosphere/marathon/core/externalvolume/impl/providers/DVDIProvider.scala,
//     Builders.dockerVolumeParameters and toUnifiedContainerVolume) turns
//     {"external": {"name": N, "provider": "dvdi", "size": S, "options": O}}
//     into a Mesos DOCKER_VOLUME source with driver O["dvdi/driver"], name N
//     and driver_options: every O key that starts with "dvdi/" except
//     "dvdi/driver" (compared lower-cased), the prefix cut off and the value
//     trimmed, plus "size" = S as a bare integer when external.size is set
//     (it then wins over "dvdi/size"; DC/OS documents S in GiB). Other
//     options are dropped. It also validates: one instance per app, a volume
//     name used by one app only, mode RW, and for MESOS containers a
//     containerPath of one relative path element.
//   - Mesos (apache/mesos,
//     src/slave/containerizer/mesos/isolators/docker/volume/driver.cpp,
//     DriverClient::mount and ::unmount) runs, for every container using the
//     volume, `dvdcli mount --volumedriver=D --volumename=N` with one
//     `--volumeopts=K=V` per driver option, and uses dvdcli's standard
//     output, trimmed, as the source it bind-mounts into the container. When
//     a container is cleaned up it runs `dvdcli unmount --volumedriver=D
//     --volumename=N` only if no other container on the agent still uses
//     the volume (isolator.cpp, cleanup: a reference count over its
//     containers). Calls for one volume are serialized.
//   - dvdcli (rexray/dvdcli at 7dede14, the commit DC/OS builds:
//     dcos/dcos packages/dvdcli/buildinfo.json) parses --volumeopts as a
//     string slice, which splits every value at ','
//     (vendor/github.com/spf13/pflag/string_slice.go), then splits each
//     piece at '=' and keeps the first two parts (dvdcli/commands.go): a
//     value holding ',' or '=' is cut up, and a piece without '=' crashes
//     it. The volume name is a plain string flag and arrives whole.
//
// What dvdcli then sends on the wire is described in the test that replays
// it, cmd/ballast/dvdi_test.go.
package dvdi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// Group is the part of a Marathon group definition the sensor group uses.
type Group struct {
	ID   string `json:"id"`
	Apps []App  `json:"apps"`
}

// App is a Marathon app definition, as far as the group uses it.
type App struct {
	ID           string   `json:"id"`
	Instances    int      `json:"instances"`
	CPUs         float64  `json:"cpus"`
	Mem          float64  `json:"mem"`
	Disk         float64  `json:"disk"`
	Cmd          string   `json:"cmd"`
	Dependencies []string `json:"dependencies,omitempty"`
	Container    struct {
		Type   string `json:"type"`
		Docker struct {
			Image string `json:"image"`
		} `json:"docker"`
		Volumes []Volume `json:"volumes,omitempty"`
	} `json:"container"`
	PortDefinitions []struct {
		Port     int    `json:"port"`
		Protocol string `json:"protocol"`
		Name     string `json:"name"`
	} `json:"portDefinitions"`
	RequirePorts bool `json:"requirePorts"`
	HealthChecks []struct {
		Protocol               string `json:"protocol"`
		PortIndex              int    `json:"portIndex"`
		GracePeriodSeconds     int    `json:"gracePeriodSeconds"`
		IntervalSeconds        int    `json:"intervalSeconds"`
		TimeoutSeconds         int    `json:"timeoutSeconds"`
		MaxConsecutiveFailures int    `json:"maxConsecutiveFailures"`
	} `json:"healthChecks,omitempty"`
	UpgradeStrategy *struct {
		MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
		MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
	} `json:"upgradeStrategy,omitempty"`
	UnreachableStrategy *struct {
		InactiveAfterSeconds int `json:"inactiveAfterSeconds"`
		ExpungeAfterSeconds  int `json:"expungeAfterSeconds"`
	} `json:"unreachableStrategy,omitempty"`
}

// Volume is a container volume of a Marathon app.
type Volume struct {
	ContainerPath string   `json:"containerPath"`
	Mode          string   `json:"mode"`
	External      External `json:"external"`
}

// External is an external volume: its name, provider, size in GiB (which
// Marathon passes on as a bare number) and options.
type External struct {
	Name     string            `json:"name"`
	Provider string            `json:"provider"`
	Size     *int64            `json:"size,omitempty"`
	Options  map[string]string `json:"options"`
}

// DriverKey is the option that names the Docker volume plugin.
const DriverKey = "dvdi/driver"

// Load decodes a group definition strictly: an unknown field is an error.
func Load(path string) (*Group, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	var g Group
	if err := d.Decode(&g); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &g, nil
}

// DVDIVolumes returns the app's dvdi external volumes.
func (a *App) DVDIVolumes() []Volume {
	var out []Volume
	for _, v := range a.Container.Volumes {
		if v.External.Provider == "dvdi" {
			out = append(out, v)
		}
	}
	return out
}

// Driver is the Docker volume plugin the volume asks for.
func (e External) Driver() string { return e.Options[DriverKey] }

// DriverOptions are the Mesos driver_options Marathon derives from the
// volume (DVDIProvider.dockerVolumeParameters).
func (e External) DriverOptions() map[string]string {
	const prefix = "dvdi/"
	out := map[string]string{}
	for k, v := range e.Options {
		if strings.HasPrefix(k, prefix) && strings.ToLower(k) != DriverKey {
			out[k[len(prefix):]] = strings.TrimSpace(v)
		}
	}
	if e.Size != nil {
		out["size"] = fmt.Sprint(*e.Size)
	}
	return out
}

// MountArgs are the arguments Mesos runs dvdcli with to mount the volume
// (DriverClient::mount), the options in a fixed order.
func (e External) MountArgs() []string {
	args := []string{"mount", "--volumedriver=" + e.Driver(), "--volumename=" + e.Name}
	opts := e.DriverOptions()
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		args = append(args, "--volumeopts="+k+"="+opts[k])
	}
	return args
}

// DvdcliOpts is the Opts map dvdcli's mount command builds from its
// --volumeopts arguments (args as MountArgs gives them) and sends in
// VolumeDriver.Create. It fails where dvdcli would crash: a piece without
// '='.
func DvdcliOpts(args []string) (map[string]string, error) {
	opts := map[string]string{}
	for _, a := range args {
		val, ok := strings.CutPrefix(a, "--volumeopts=")
		if !ok {
			continue
		}
		for _, piece := range strings.Split(val, ",") { // pflag's StringSlice
			kv := strings.Split(piece, "=")
			if len(kv) < 2 {
				return nil, fmt.Errorf("dvdcli would crash on --volumeopts piece %q: it has no '='", piece)
			}
			opts[kv[0]] = kv[1]
		}
	}
	return opts, nil
}
