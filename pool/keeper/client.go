package keeper

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// EnvFD names the environment variable through which the supervisor tells
// its child which inherited descriptor is its end of the keeper socket.
const EnvFD = "BALLAST_KEEPER_FD"

// Client is the serving daemon's end of the keeper socket. Its methods
// may be called from several goroutines; requests go one at a time.
type Client struct {
	mu   sync.Mutex
	conn *os.File
	fd   int
}

// NewClient wraps conn, a connected SOCK_SEQPACKET socket.
func NewClient(conn *os.File) (*Client, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn}
	if err := rc.Control(func(f uintptr) { c.fd = int(f) }); err != nil {
		return nil, err
	}
	return c, nil
}

// FromEnv returns the client for the socket the supervisor passed in
// EnvFD, or nil when the daemon runs without a keeper.
func FromEnv() (*Client, error) {
	v := os.Getenv(EnvFD)
	if v == "" {
		return nil, nil
	}
	os.Unsetenv(EnvFD) // not for the daemon's own children
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: not a descriptor number", EnvFD, v)
	}
	unix.CloseOnExec(fd) // not inherited by mkfs, fsck, ...
	return NewClient(os.NewFile(uintptr(fd), "keeper"))
}

func (c *Client) call(m message, files []*os.File) (message, []*os.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := send(c.fd, m, files); err != nil {
		return message{}, nil, fmt.Errorf("keeper: %s: %w", m.Op, err)
	}
	ans, got, err := recv(c.fd)
	if err != nil {
		return message{}, nil, fmt.Errorf("keeper: %s: %w", m.Op, err)
	}
	if ans.Err != "" {
		closeAll(got)
		return ans, nil, errors.New("keeper: " + ans.Err)
	}
	return ans, got, nil
}

// Hold gives the keeper copies of files (the caller keeps its own) and
// state, under name, replacing what it held under that name.
func (c *Client) Hold(name string, state []byte, files ...*os.File) error {
	_, _, err := c.call(message{Op: "hold", Name: name, State: state}, files)
	return err
}

// Drop makes the keeper close what it holds under name. Dropping a name
// not held succeeds.
func (c *Client) Drop(name string) error {
	_, _, err := c.call(message{Op: "drop", Name: name}, nil)
	return err
}

// Ready tells the keeper this daemon has started and serves: from then on
// its death is a crash to restart from, not a start-up error.
func (c *Client) Ready() error {
	_, _, err := c.call(message{Op: "ready"}, nil)
	return err
}

// KeepsVolumes asks whether what the keeper holds outlives this daemon: it
// does unless the keeper itself is stopping with nowhere to hand it
// (systemd's file descriptor store). A daemon stopping with its volumes
// kept leaves them exactly as they are, for the next daemon to take over.
func (c *Client) KeepsVolumes() (bool, error) {
	ans, _, err := c.call(message{Op: "plan"}, nil)
	return ans.Keep, err
}

// Held lists what the keeper holds: each name's state.
func (c *Client) Held() (map[string][]byte, error) {
	ans, _, err := c.call(message{Op: "list"}, nil)
	if ans.Held == nil {
		ans.Held = map[string][]byte{}
	}
	return ans.Held, err
}

// Take returns the state and copies of the descriptors held under name;
// the keeper keeps its own, now on this daemon's account.
func (c *Client) Take(name string) ([]byte, []*os.File, error) {
	ans, files, err := c.call(message{Op: "take", Name: name}, nil)
	return ans.State, files, err
}

// Close closes the socket; the keeper then waits the restart grace for
// the next daemon.
func (c *Client) Close() error { return c.conn.Close() }
