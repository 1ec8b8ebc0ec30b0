// Package keeper keeps a serving daemon's kernel-side file descriptors
// (each volume's /dev/fuse connection and loop device) alive across the
// daemon's restarts, so that I/O on a mounted volume waits for the next
// daemon instead of failing.
//
// "ballast daemon" runs as a small supervisor (Supervise) that starts the
// serving daemon as its child and talks to it over a unix socket pair (the
// child's end is inherited as a file descriptor). After it mounts a volume
// the child hands the keeper a copy of its descriptors (Client.Hold); the
// kernel aborts a FUSE connection only when its last /dev/fuse descriptor
// closes, so while the keeper holds one, a crashed child's requests queue.
// The next child asks which volumes are held (Client.Names), takes their
// descriptors back (Client.Take) and serves the same connections. A volume
// that no child takes within the restart grace is released: the keeper
// closes its copies, the connection aborts and its I/O fails with EIO, as
// it would without a keeper.
//
// The keeper knows nothing of FUSE: an entry is a name, an opaque state
// blob and a few descriptors, like systemd's file descriptor store.
package keeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// message is one request or answer on the socket. Descriptors travel
// beside it as SCM_RIGHTS.
type message struct {
	Op    string            `json:"op,omitempty"` // hold, drop, list, take, ready, plan
	Name  string            `json:"name,omitempty"`
	State []byte            `json:"state,omitempty"`
	Held  map[string][]byte `json:"held,omitempty"` // list's answer: name -> state
	Keep  bool              `json:"keep,omitempty"` // plan's answer: held volumes outlive this daemon
	Err   string            `json:"err,omitempty"`
}

// maxMessage bounds one message; states are a few hundred bytes.
const maxMessage = 64 << 10

// maxFiles bounds the descriptors one message carries.
const maxFiles = 8

// send writes m with files attached as one datagram of a SOCK_SEQPACKET
// socket.
func send(fd int, m message, files []*os.File) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return fmt.Errorf("keeper: message of %d bytes is too big", len(b))
	}
	if len(files) > maxFiles {
		return fmt.Errorf("keeper: %d descriptors in one message, at most %d", len(files), maxFiles)
	}
	oob := rights(files)
	for {
		err = unix.Sendmsg(fd, b, oob, nil, 0)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// rights is the SCM_RIGHTS control message passing files; nil for none.
func rights(files []*os.File) []byte {
	if len(files) == 0 {
		return nil
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	return unix.UnixRights(fds...)
}

// recv reads one datagram and the descriptors it carries, which the caller
// owns. io.EOF-like end of the peer is reported as errClosed.
func recv(fd int) (message, []*os.File, error) {
	var m message
	b := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(maxFiles*4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(fd, b, oob, unix.MSG_CMSG_CLOEXEC)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		return m, nil, err
	}
	files, ferr := parseRights(oob[:oobn])
	if n == 0 && oobn == 0 {
		return m, nil, errClosed
	}
	if ferr != nil {
		closeAll(files)
		return m, nil, ferr
	}
	if err := json.Unmarshal(b[:n], &m); err != nil {
		closeAll(files)
		return m, nil, fmt.Errorf("keeper: bad message: %w", err)
	}
	return m, files, nil
}

var errClosed = errors.New("keeper: peer closed the connection")

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	scms, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("keeper: control message: %w", err)
	}
	var files []*os.File
	for _, scm := range scms {
		fds, err := unix.ParseUnixRights(&scm)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "keeper-fd"))
		}
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}
