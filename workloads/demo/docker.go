package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// run runs a command and returns its trimmed stdout. The error names the
// command and ends with the tail of its stderr (or stdout). The whole
// process group is killed when ctx ends, so a cancelled debootstrap takes
// its dpkg children with it.
func run(ctx context.Context, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &out
	cmd.Stderr = &errb
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return strings.TrimSpace(out.String()), fmt.Errorf("%s: %w: %s", cmdline(name, args), err, tail(msg, 600))
	}
	return strings.TrimSpace(out.String()), nil
}

// docker runs the host's docker CLI.
func docker(ctx context.Context, args ...string) (string, error) {
	return run(ctx, nil, "docker", args...)
}

// dockerExec runs argv inside the node container.
func dockerExec(ctx context.Context, node string, argv ...string) (string, error) {
	return run(ctx, nil, "docker", append([]string{"exec", node}, argv...)...)
}

func cmdline(name string, args []string) string {
	s := name + " " + strings.Join(args, " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// tail keeps the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// lines splits command output into non-empty lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// poll calls f every interval until it returns true or an error, or until
// timeout; what names the wait in the timeout error, with f's last detail.
func poll(ctx context.Context, timeout, interval time.Duration, what string, f func() (bool, string, error)) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var detail string
	for {
		ok, d, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		detail = d
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				return fmt.Errorf("%s: interrupted: %w", what, err)
			}
			if detail != "" {
				return fmt.Errorf("%s: not after %s (%s): %w", what, timeout, detail, ctx.Err())
			}
			return fmt.Errorf("%s: not after %s: %w", what, timeout, ctx.Err())
		case <-time.After(interval):
		}
	}
}
