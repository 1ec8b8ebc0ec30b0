// Package dcoscsi holds the DC/OS (Mesos) CSI plugin configurations of
// Ballast and an example Marathon app. Its test decodes them strictly into
// the fields Mesos's CSIPluginInfo and Marathon's CSI external volume have,
// and checks they name the driver.
package dcoscsi

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/ballast-io/ballast/csi"
)

// pluginInfo is mesos.CSIPluginInfo as JSON.
type pluginInfo struct {
	Type       string `json:"type"`
	Name       string `json:"name"`
	Containers []struct {
		Services []string `json:"services"`
		Command  struct {
			Shell *bool  `json:"shell"`
			Value string `json:"value"`
		} `json:"command"`
		Resources []struct {
			Name   string `json:"name"`
			Type   string `json:"type"`
			Scalar struct {
				Value float64 `json:"value"`
			} `json:"scalar"`
		} `json:"resources"`
	} `json:"containers"`
	Endpoints []struct {
		CSIService string `json:"csi_service"`
		Endpoint   string `json:"endpoint"`
	} `json:"endpoints"`
	TargetPathRoot   string `json:"target_path_root"`
	TargetPathExists bool   `json:"target_path_exists"`
}

// app is the part of a Marathon app definition this example uses.
type app struct {
	ID        string  `json:"id"`
	Instances int     `json:"instances"`
	CPUs      float64 `json:"cpus"`
	Mem       float64 `json:"mem"`
	Container struct {
		Type   string `json:"type"`
		Docker struct {
			Image string `json:"image"`
		} `json:"docker"`
		Volumes []struct {
			ContainerPath string `json:"containerPath"`
			Mode          string `json:"mode"`
			External      struct {
				Provider string `json:"provider"`
				Name     string `json:"name"`
				Options  struct {
					PluginName string `json:"pluginName"`
					Capability struct {
						AccessType string `json:"accessType"`
						AccessMode string `json:"accessMode"`
						FSType     string `json:"fsType"`
					} `json:"capability"`
				} `json:"options"`
			} `json:"external"`
		} `json:"volumes"`
	} `json:"container"`
	Env             map[string]string `json:"env"`
	UpgradeStrategy struct {
		MinimumHealthCapacity float64 `json:"minimumHealthCapacity"`
		MaximumOverCapacity   float64 `json:"maximumOverCapacity"`
	} `json:"upgradeStrategy"`
	UnreachableStrategy struct {
		InactiveAfterSeconds int `json:"inactiveAfterSeconds"`
		ExpungeAfterSeconds  int `json:"expungeAfterSeconds"`
	} `json:"unreachableStrategy"`
}

func decode(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func TestPluginConfigs(t *testing.T) {
	for _, file := range []string{"ballast.json", "ballast-managed.json"} {
		var p pluginInfo
		decode(t, file, &p)
		if p.Type != csi.DriverName || p.TargetPathRoot == "" {
			t.Errorf("%s: type %q, target_path_root %q", file, p.Type, p.TargetPathRoot)
		}
		var services []string
		for _, e := range p.Endpoints {
			services = append(services, e.CSIService)
			if _, err := csi.SocketPath(e.Endpoint); err != nil {
				t.Errorf("%s: %v", file, err)
			}
		}
		for _, c := range p.Containers {
			services = append(services, c.Services...)
		}
		if !slices.Contains(services, "NODE_SERVICE") {
			t.Errorf("%s declares no NODE_SERVICE: %v", file, services)
		}
	}
}

func TestMarathonApp(t *testing.T) {
	var a app
	decode(t, "marathon-app.json", &a)
	if a.Container.Type != "MESOS" || len(a.Container.Volumes) != 1 {
		t.Fatalf("CSI volumes need a MESOS container: %+v", a.Container)
	}
	v := a.Container.Volumes[0]
	c := v.External.Options.Capability
	if v.External.Provider != "csi" || v.External.Options.PluginName != csi.DriverName || c.AccessType != "mount" || c.AccessMode != "SINGLE_NODE_WRITER" {
		t.Errorf("volume %+v", v)
	}
	if a.UpgradeStrategy.MaximumOverCapacity != 0 || a.UpgradeStrategy.MinimumHealthCapacity != 0 {
		t.Error("a single-attach volume needs upgradeStrategy 0/0")
	}
}
