// Package driver is Ballast's Docker volume plugin: it serves the Docker
// volume plugin protocol (VolumeDriver) on a unix socket and turns each
// request into a call on api.Service, the node's volume service. It keeps
// no state of its own except, per volume, the Docker mount IDs using it on
// this node, so that a volume is attached on its first mount and detached
// after its last unmount.
//
// Volumes are created with options (docker volume create -d ballast --opt
// size=10G --opt repl=2 NAME) or with a Portworx-style inline spec as the
// name (size=10G,repl=2,name=pgdata), which also works in docker run -v;
// see ParseSpec. Every volume of the cluster is listed, and the plugin's
// Capabilities say its scope is "global".
//
// The handler is written against the plugin HTTP protocol with net/http
// rather than github.com/docker/go-plugins-helpers: that library answers a
// malformed request body with a plain-text 400 instead of {"Err": ...},
// gives the driver no request context, offers no http.Handler to test or
// shut down gracefully, and would add an unmaintained go-systemd v0 and
// go-winio to the build for a few struct types.
package driver
