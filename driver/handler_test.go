package driver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// post sends a raw body to one plugin method and decodes the answer, which
// must be JSON whatever the body was.
func post(t testing.TB, h http.Handler, method, body string) (int, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/"+method, strings.NewReader(body)))
	var res map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &res); err != nil {
		t.Fatalf("%s %q: answer %q is not JSON: %v", method, body, w.Body, err)
	}
	return w.Code, res
}

func TestHandlerBadRequests(t *testing.T) {
	f := newFake("n1")
	d := New(f, "n1", Options{}, nil)
	for _, tc := range []struct {
		method, body, want string
	}{
		{"VolumeDriver.Create", `{`, "request body is not the JSON VolumeDriver.Create expects"},
		{"VolumeDriver.Create", ``, "request body is not the JSON"},
		{"VolumeDriver.Create", `[]`, "request body is not the JSON"},
		{"VolumeDriver.Create", `{"Name": 7}`, "request body is not the JSON"},
		{"VolumeDriver.Create", `{"Name":"v1","Opts":{"size":10}}`, "request body is not the JSON"},
		{"VolumeDriver.Create", `{"Name":"v1"} trailing`, "request body is not the JSON"},
		{"VolumeDriver.Create", `{}`, "VolumeDriver.Create: the request has no volume Name"},
		{"VolumeDriver.Create", `null`, "no volume Name"},
		{"VolumeDriver.Create", `{"Name":"v1","Opts":{"size":"10X"}}`, `unknown unit "X"`},
		{"VolumeDriver.Create", `{"Name":"v1","Opts":{"size":"1G","speed":"fast"}}`, `unknown option "speed"`},
		{"VolumeDriver.Create", `{"Name":"v1"}`, "needs a size"},
		{"VolumeDriver.Create", `{"Name":"size=1G,repl=2"}`, "has no name="},
		{"VolumeDriver.Create", `{"Name":"size=1G,name=v1","Opts":{"size":"2G"}}`, "option size is"},
		{"VolumeDriver.Remove", `{"Name":""}`, "no volume Name"},
		{"VolumeDriver.Mount", `{"ID":"x"}`, "no volume Name"},
		{"VolumeDriver.Mount", `{"Name":"size=1G","ID":"x"}`, "has no name="},
		{"VolumeDriver.Get", `not json`, "request body is not the JSON"},
		{"VolumeDriver.Path", `{"Name":"a b"}`, `volume name "a b"`},
		{"VolumeDriver.Get", `{"Name":"nope"}`, `volume "nope" does not exist`},
		{"VolumeDriver.List", `{`, "request body is not JSON"},
		{"VolumeDriver.Frobnicate", `{}`, `unknown method "/VolumeDriver.Frobnicate"`},
	} {
		code, res := post(t, d, tc.method, tc.body)
		msg, _ := res["Err"].(string)
		if code == http.StatusOK || !strings.Contains(msg, tc.want) {
			t.Errorf("%s %s: %d %v, want an error with %q", tc.method, tc.body, code, res, tc.want)
		}
	}
	if n := f.Count("create"); n != 0 {
		t.Fatalf("bad requests made %d CreateVolume calls", n)
	}
	if f.Volumes() != 0 {
		t.Fatal("bad requests created volumes")
	}

	w := httptest.NewRecorder()
	d.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/VolumeDriver.List", nil))
	if w.Code != http.StatusMethodNotAllowed || !strings.Contains(w.Body.String(), `"Err":"VolumeDriver.List needs POST`) {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
}

// TestHandlerFlow is what docker run -v size=1G,name=v1:/data does, then
// docker volume ls / inspect / rm.
func TestHandlerFlow(t *testing.T) {
	f := newFake("n1")
	d := New(f, "n1", Options{}, nil)
	step := func(method, body string) map[string]any {
		t.Helper()
		code, res := post(t, d, method, body)
		if code != http.StatusOK || res["Err"] != nil {
			t.Fatalf("%s %s: %d %v", method, body, code, res)
		}
		return res
	}
	res := step("Plugin.Activate", `null`)
	if impl, _ := json.Marshal(res["Implements"]); string(impl) != `["VolumeDriver"]` {
		t.Fatalf("Activate: %v", res)
	}
	res = step("VolumeDriver.Capabilities", ``)
	if scope := res["Capabilities"].(map[string]any)["Scope"]; scope != "global" {
		t.Fatalf("Capabilities: %v", res)
	}
	const name = "size=1G,repl=2,name=v1"
	// Docker asks for the volume first and creates it only if Get fails.
	if code, res := post(t, d, "VolumeDriver.Get", `{"Name":"`+name+`"}`); code == http.StatusOK {
		t.Fatalf("Get before Create: %v", res)
	}
	step("VolumeDriver.Create", `{"Name":"`+name+`","Opts":{"fs":"xfs"}}`)
	if v := f.Volume("v1"); v == nil || v.Repl != 2 || v.FS != "xfs" || v.Size != gib {
		t.Fatalf("created %+v", v)
	}
	res = step("VolumeDriver.Get", `{"Name":"`+name+`"}`)
	if v := res["Volume"].(map[string]any); v["Name"] != name || v["Mountpoint"] != nil {
		t.Fatalf("Get: %v", res)
	}
	res = step("VolumeDriver.Mount", `{"Name":"`+name+`","ID":"abc"}`)
	if res["Mountpoint"] != "/var/lib/ballast/mounts/v1" {
		t.Fatalf("Mount: %v", res)
	}
	res = step("VolumeDriver.Path", `{"Name":"`+name+`"}`)
	if res["Mountpoint"] != "/var/lib/ballast/mounts/v1" {
		t.Fatalf("Path: %v", res)
	}
	res = step("VolumeDriver.List", `{}`)
	if vs := res["Volumes"].([]any); len(vs) != 1 || vs[0].(map[string]any)["Name"] != "v1" {
		t.Fatalf("List: %v", res)
	}
	code, res := post(t, d, "VolumeDriver.Remove", `{"Name":"`+name+`"}`)
	if code == http.StatusOK || !strings.Contains(res["Err"].(string), "mounted by 1 container(s)") {
		t.Fatalf("Remove while mounted: %d %v", code, res)
	}
	step("VolumeDriver.Unmount", `{"Name":"`+name+`","ID":"abc"}`)
	step("VolumeDriver.Remove", `{"Name":"`+name+`"}`)
	if f.Volumes() != 0 {
		t.Fatal("not removed")
	}
}

var methods = []string{
	"Plugin.Activate", "VolumeDriver.Capabilities", "VolumeDriver.Create", "VolumeDriver.Remove",
	"VolumeDriver.Get", "VolumeDriver.List", "VolumeDriver.Path", "VolumeDriver.Mount",
	"VolumeDriver.Unmount", "VolumeDriver.Nope",
}

// FuzzHandlers posts arbitrary bodies to every method, over a fake that
// already holds a volume: every answer is JSON, nothing panics, and a
// request that fails creates nothing.
func FuzzHandlers(f *testing.F) {
	for _, s := range []string{
		`{"Name":"v2","Opts":{"size":"1G","repl":"2"}}`, `{"Name":"size=1G,name=v3"}`,
		`{"Name":"v1","ID":"m1"}`, `{"Name":"size=1G;name=v1","ID":"m1"}`, `{"Name":""}`,
		`{`, `null`, `[]`, ``, `{"Name":"v1","Opts":{"size":"1G","pin":"zone=a"}}`,
		`{"Name":"name=v4,size=1G","Opts":{"size":"2G"}}`,
	} {
		for i := range methods {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, m uint8, body string) {
		svc := newFake("n1")
		d := New(svc, "n1", Options{}, nil)
		if _, err := svc.CreateVolume(t.Context(), mustSpec(t, "v1"), api.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		method := methods[int(m)%len(methods)]
		code, res := post(t, d, method, body)
		failed := code != http.StatusOK
		if msg, _ := res["Err"].(string); failed != (msg != "") {
			t.Fatalf("%s %q: status %d with Err %q", method, body, code, msg)
		}
		if failed && svc.Volumes() != 1 {
			t.Fatalf("%s %q failed (%v) but created a volume", method, body, res)
		}
		if code == http.StatusBadRequest && svc.Count("create") != 1 {
			t.Fatalf("%s %q was refused as invalid (%v) but reached CreateVolume", method, body, res)
		}
		if failed && method == "VolumeDriver.Mount" && len(d.mounts.vols) != 0 {
			t.Fatalf("failed Mount %q left a mount count", body)
		}
	})
}

func mustSpec(t testing.TB, name string) spec.Volume {
	t.Helper()
	v, err := ParseSpec(name, map[string]string{"size": "1G"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
