package dvdi

import (
	"maps"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/driver"
)

const groupFile = "sensors-group.json"

// TestSensorsGroup decodes the group strictly and checks that what DC/OS
// would hand the Ballast plugin for each dvdi volume is a spec the plugin
// accepts, and that the group passes Marathon's dvdi validations.
func TestSensorsGroup(t *testing.T) {
	g, err := Load(groupFile)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{} // volume name -> app
	var vols int
	for _, a := range g.Apps {
		if !strings.HasPrefix(a.ID, g.ID+"/") {
			t.Errorf("app %s is not in group %s", a.ID, g.ID)
		}
		dv := a.DVDIVolumes()
		if len(dv) == 0 {
			continue
		}
		// Marathon's DVDIProviderValidations.
		if a.Instances > 1 {
			t.Errorf("%s: %d instances; Marathon allows 1 with dvdi volumes", a.ID, a.Instances)
		}
		if u := a.UpgradeStrategy; u == nil || u.MinimumHealthCapacity != 0 || u.MaximumOverCapacity != 0 {
			t.Errorf("%s: upgradeStrategy must be 0/0: a volume is attached on one agent at a time, the old task must stop first", a.ID)
		}
		if a.Container.Type != "MESOS" {
			t.Errorf("%s: container type %q; only the Mesos containerizer passes dvdi options to the plugin", a.ID, a.Container.Type)
		}
		for _, v := range dv {
			vols++
			e := v.External
			if prev, ok := names[e.Name]; ok {
				t.Errorf("volume %s is used by %s and %s; Marathon refuses that", e.Name, prev, a.ID)
			}
			names[e.Name] = a.ID
			if v.Mode != "RW" {
				t.Errorf("%s: volume %s mode %q, want RW", a.ID, e.Name, v.Mode)
			}
			if p := v.ContainerPath; p == "" || p == "." || p == ".." || strings.Contains(p, "/") {
				t.Errorf("%s: containerPath %q must be one relative path element for a MESOS container", a.ID, p)
			}
			if e.Driver() != "ballast" {
				t.Errorf("%s: volume %s has driver %q, want ballast", a.ID, e.Name, e.Driver())
			}
			if e.Size != nil {
				t.Errorf("%s: volume %s sets external.size, which reaches the plugin as a bare number of bytes; use \"dvdi/size\": \"10G\"", a.ID, e.Name)
			}
			want := e.DriverOptions()
			got, err := DvdcliOpts(e.MountArgs())
			if err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
			if !maps.Equal(got, want) {
				t.Errorf("%s: dvdcli would turn options %v into %v; avoid ',' and '=' in option values", e.Name, want, got)
			}
			v, err := driver.ParseSpec(e.Name, got)
			if err != nil {
				t.Errorf("%s: the plugin refuses what DC/OS sends (Name %q, Opts %v): %v", a.ID, e.Name, got, err)
				continue
			}
			if v.Repl != 2 || v.Size < 1<<30 || v.FS != "ext4" {
				t.Errorf("%s: volume %s is %+v, want repl 2, ext4, at least 1 GiB", a.ID, e.Name, v)
			}
		}
	}
	if vols != 2 {
		t.Errorf("%d dvdi volumes, want 2 (the broker's and the CQL server's)", vols)
	}
	// The clients reach the servers by their Mesos-DNS names and fixed ports.
	addr := map[string]string{}
	for _, a := range g.Apps {
		if len(a.PortDefinitions) > 0 {
			if !a.RequirePorts {
				t.Errorf("%s: the clients use its fixed port: set requirePorts", a.ID)
			}
			addr[a.ID] = mesosDNS(a.ID) + ":" + strconv.Itoa(a.PortDefinitions[0].Port)
		}
	}
	for _, a := range g.Apps {
		for _, dep := range a.Dependencies {
			if addr[dep] == "" {
				t.Errorf("%s depends on %s, which serves no port", a.ID, dep)
			} else if !strings.Contains(a.Cmd, addr[dep]) {
				t.Errorf("%s depends on %s but does not connect to %s: %s", a.ID, dep, addr[dep], a.Cmd)
			}
		}
	}
}

// TestWorkloadFlags checks that every app runs a ballast workload command
// with flags that exist, asking the binary built from this tree.
func TestWorkloadFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the ballast binary")
	}
	g, err := Load(groupFile)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "ballast")
	if out, err := exec.Command("go", "build", "-o", bin, "../../../cmd/ballast").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, a := range g.Apps {
		f := strings.Fields(strings.ReplaceAll(a.Cmd, `"`, ""))
		if len(f) < 4 || f[0] != "exec" || f[1] != "/usr/local/bin/ballast" || f[2] != "workload" {
			t.Errorf("%s: cmd %q, want exec /usr/local/bin/ballast workload ...", a.ID, a.Cmd)
			continue
		}
		help, err := exec.Command(bin, "workload", f[3], "--help").CombinedOutput()
		if err != nil {
			t.Errorf("%s: ballast workload %s --help: %v\n%s", a.ID, f[3], err, help)
			continue
		}
		for _, arg := range f[4:] {
			name, _, _ := strings.Cut(arg, "=")
			if strings.HasPrefix(name, "--") && !strings.Contains(string(help), "      "+name+" ") {
				t.Errorf("%s: ballast workload %s has no flag %s", a.ID, f[3], name)
			}
		}
	}
}

// TestDriverOptions follows Marathon volumes through Marathon, Mesos and
// dvdcli to the options the plugin gets, and what the plugin makes of them.
func TestDriverOptions(t *testing.T) {
	gib := int64(5)
	for _, tc := range []struct {
		what    string
		ext     External
		opts    map[string]string // what the plugin gets in Create
		wantErr string            // from driver.ParseSpec; "" accepts
	}{
		{"size and repl as options",
			External{Name: "pgdata", Options: map[string]string{"dvdi/driver": "ballast", "dvdi/size": " 10G ", "dvdi/repl": "2", "other/x": "y"}},
			map[string]string{"size": "10G", "repl": "2"}, ""},
		{"Marathon's external.size (GiB in DC/OS's docs) wins over dvdi/size and arrives as a bare number of bytes",
			External{Name: "pgdata", Size: &gib, Options: map[string]string{"dvdi/driver": "ballast", "dvdi/size": "10G"}},
			map[string]string{"size": "5"}, "size"},
		{"an option Ballast does not have (REX-Ray's)",
			External{Name: "pgdata", Options: map[string]string{"dvdi/driver": "ballast", "dvdi/size": "1G", "dvdi/iops": "150"}},
			map[string]string{"size": "1G", "iops": "150"}, `unknown option "iops"`},
		{"dvdcli cuts a label value at '='",
			External{Name: "pgdata", Options: map[string]string{"dvdi/driver": "ballast", "dvdi/size": "1G", "dvdi/pin": "zone=a"}},
			map[string]string{"size": "1G", "pin": "zone"}, `label "zone" must be key=value`},
		{"dvdcli splits a value at ','",
			External{Name: "pgdata", Options: map[string]string{"dvdi/driver": "ballast", "dvdi/size": "1G", "dvdi/min_in_sync": "1,repl=2"}},
			map[string]string{"size": "1G", "min_in_sync": "1", "repl": "2"}, ""},
		{"labels in an inline spec as the name, which dvdcli passes whole",
			External{Name: "size=1G,repl=2,pin=zone=a,name=pgdata", Options: map[string]string{"dvdi/driver": "ballast"}},
			map[string]string{}, ""},
	} {
		t.Run(tc.what, func(t *testing.T) {
			got, err := DvdcliOpts(tc.ext.MountArgs())
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.opts) {
				t.Fatalf("the plugin gets %v, want %v", got, tc.opts)
			}
			v, err := driver.ParseSpec(tc.ext.Name, got)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("ParseSpec(%q, %v): %v", tc.ext.Name, got, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("ParseSpec(%q, %v) = %+v, %v; want an error with %q", tc.ext.Name, got, v, err, tc.wantErr)
			case err != nil:
				t.Logf("the plugin says: %v", err)
			}
		})
	}
	if _, err := DvdcliOpts([]string{"--volumeopts=size=1G,ext4"}); err == nil {
		t.Error("a --volumeopts piece without '=' must be reported: dvdcli crashes on it")
	}
}

// mesosDNS is the Mesos-DNS name of a Marathon app: /sensors/broker is
// broker-sensors.marathon.mesos.
func mesosDNS(id string) string {
	parts := strings.Split(strings.Trim(id, "/"), "/")
	for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
		parts[i], parts[j] = parts[j], parts[i]
	}
	return strings.Join(parts, "-") + ".marathon.mesos"
}
