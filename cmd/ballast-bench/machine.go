package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machineContext describes the machine and the run for the report's head.
func machineContext(c config) [][2]string {
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			return "unknown"
		}
		return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	grep := func(file, key string) string {
		b, err := os.ReadFile(file)
		if err != nil {
			return "unknown"
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == key {
				return strings.Join(strings.Fields(v), " ")
			}
		}
		return "unknown"
	}
	host, _ := os.Hostname()
	parent := c.dir
	for parent != "/" {
		if _, err := os.Stat(parent); err == nil {
			break
		}
		parent = filepath.Dir(parent)
	}
	return [][2]string{
		{"Date", time.Now().UTC().Format(time.RFC3339)},
		{"Command", "`" + strings.Join(os.Args, " ") + "`"},
		{"Host", host},
		{"CPUs (nproc)", first("nproc")},
		{"CPU", grep("/proc/cpuinfo", "model name")},
		{"Memory", grep("/proc/meminfo", "MemTotal")},
		{"Kernel", first("uname", "-srm")},
		{"Load average at start (1, 5, 15 min)", loadavg()},
		{"Scratch dir", fmt.Sprintf("%s on %s", c.dir, first("findmnt", "-no", "SOURCE,FSTYPE", "-T", parent))},
		{"Ballast", fmt.Sprintf("%s (%s)", c.ballast, first(c.ballast, "--version"))},
		{"fio", first("fio", "--version")},
		{"Go (ballast-bench)", runtime.Version()},
	}
}

// loadavg is /proc/loadavg's 1, 5 and 15 minute averages: other work on the
// machine skews the numbers.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
