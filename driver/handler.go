package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/ballast-io/ballast/pool/api"
	"github.com/ballast-io/ballast/pool/spec"
)

// The Docker volume plugin protocol: every call is a POST of a JSON body
// to /Plugin.Activate or /VolumeDriver.<Method>, answered with JSON; a
// failure is {"Err": "message"}, which Docker shows the user as
// "Error response from daemon: ...: VolumeDriver.<Method>: message".

const contentType = "application/vnd.docker.plugins.v1.2+json"

// maxBody bounds a request body; real ones are a few hundred bytes.
const maxBody = 1 << 20

// request is the body of every call that names a volume.
type request struct {
	Name string
	ID   string            // Mount and Unmount
	Opts map[string]string // Create
}

// response is the body of every answer; each call fills its own fields.
type response struct {
	Err          string        `json:",omitempty"`
	Implements   []string      `json:",omitempty"`
	Capabilities *capabilities `json:",omitempty"`
	Mountpoint   string        `json:",omitempty"`
	Volume       *volume       `json:",omitempty"`
	Volumes      []volume      `json:",omitempty"`
}

type capabilities struct {
	Scope string
}

// ServeHTTP answers one plugin call.
func (d *Driver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/")
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, response{Err: fmt.Sprintf("%s needs POST, not %s", method, r.Method)})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		reply(w, http.StatusBadRequest, response{Err: fmt.Sprintf("%s: reading the request body: %v", method, err)})
		return
	}
	res, err := d.call(r, method, body)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, spec.ErrInvalid) {
			status = http.StatusBadRequest
		}
		if errors.Is(err, errUnknownMethod) {
			status = http.StatusNotFound
		}
		level := slog.LevelWarn
		if method == "VolumeDriver.Get" && errors.Is(err, api.ErrNotFound) {
			level = slog.LevelDebug // Docker asks before every create
		}
		d.log.Log(r.Context(), level, "docker request failed", "method", method, "err", err)
		reply(w, status, response{Err: err.Error()})
		return
	}
	reply(w, http.StatusOK, res)
}

var errUnknownMethod = errors.New("unknown method")

// call runs one plugin method on its decoded body.
func (d *Driver) call(r *http.Request, method string, body []byte) (response, error) {
	ctx := r.Context()
	switch method {
	case "Plugin.Activate":
		return response{Implements: []string{"VolumeDriver"}}, noArgs(body)
	case "VolumeDriver.Capabilities":
		return response{Capabilities: &capabilities{Scope: "global"}}, noArgs(body)
	case "VolumeDriver.List":
		if err := noArgs(body); err != nil {
			return response{}, err
		}
		vs, err := d.list(ctx)
		return response{Volumes: vs}, err
	case "VolumeDriver.Create", "VolumeDriver.Remove", "VolumeDriver.Get", "VolumeDriver.Path",
		"VolumeDriver.Mount", "VolumeDriver.Unmount":
	default:
		return response{}, fmt.Errorf("%w %q: this plugin implements VolumeDriver (Plugin.Activate, VolumeDriver.Create, Remove, Get, List, Path, Mount, Unmount, Capabilities)", errUnknownMethod, "/"+method)
	}

	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return response{}, invalid("the request body is not the JSON %s expects (%v), e.g. {\"Name\": \"vol1\"}", method, err)
	}
	d.log.Debug("docker request", "method", method, "name", req.Name, "id", req.ID, "opts", req.Opts)
	if req.Name == "" {
		return response{}, invalid("%s: the request has no volume Name", method)
	}
	switch method {
	case "VolumeDriver.Create":
		return response{}, d.create(ctx, req.Name, req.Opts)
	case "VolumeDriver.Remove":
		return response{}, d.remove(ctx, req.Name)
	case "VolumeDriver.Get":
		v, err := d.get(ctx, req.Name)
		return response{Volume: v}, err
	case "VolumeDriver.Path":
		p, err := d.path(ctx, req.Name)
		return response{Mountpoint: p}, err
	case "VolumeDriver.Mount":
		p, err := d.mount(ctx, req.Name, req.ID)
		return response{Mountpoint: p}, err
	default: // VolumeDriver.Unmount
		return response{}, d.unmount(ctx, req.Name, req.ID)
	}
}

// noArgs checks the body of a call without parameters: empty, or any JSON.
func noArgs(body []byte) error {
	if len(strings.TrimSpace(string(body))) == 0 || json.Valid(body) {
		return nil
	}
	return invalid("the request body is not JSON")
}

func reply(w http.ResponseWriter, status int, res response) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(res) // fails only when the client went away
}
