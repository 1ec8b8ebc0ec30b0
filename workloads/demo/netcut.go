package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// cutNetwork takes every network interface of the node container down
// but loopback, from inside its network namespace: the node drops off the
// network at once, as a machine that dies does, and nothing it still does
// while its processes exit reaches another node.
func cutNetwork(ctx context.Context, node string) error {
	out, err := docker(ctx, "inspect", "-f", "{{.State.Pid}}", node)
	if err != nil {
		return fmt.Errorf("cut %s off the network: %w", node, err)
	}
	pid, err := strconv.Atoi(out)
	if err != nil || pid <= 0 {
		return fmt.Errorf("cut %s off the network: not running (pid %q)", node, out)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread enters the node's namespace and is never unlocked:
		// it ends with this goroutine instead of running other code there.
		runtime.LockOSThread()
		errc <- linksDown(pid)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("cut %s off the network: %w", node, err)
	}
	return nil
}

// linksDown enters pid's network namespace on this (locked) thread and
// clears IFF_UP on each of its interfaces but loopback.
func linksDown(pid int) error {
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return err
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter its network namespace: %w", err)
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sock)
	var errs []error
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 || ifc.Flags&net.FlagUp == 0 {
			continue
		}
		ifr, err := unix.NewIfreq(ifc.Name)
		if err == nil {
			err = unix.IoctlIfreq(sock, unix.SIOCGIFFLAGS, ifr)
		}
		if err == nil {
			ifr.SetUint16(ifr.Uint16() &^ unix.IFF_UP)
			err = unix.IoctlIfreq(sock, unix.SIOCSIFFLAGS, ifr)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s down: %w", ifc.Name, err))
		}
	}
	return errors.Join(errs...)
}
