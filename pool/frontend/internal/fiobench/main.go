// Command fiobench is a rough measurement, not a test: it runs the same fio
// jobs against ext4 on a plain loop device over a host file (the physical
// limit on this machine) and against ext4 on a fuseloop export of a
// file-backed Device (O_DIRECT host file), and prints the ratios. It tells
// whether the FUSE tuning in fuseloop works (DESIGN.md, "The data path").
//
//	go run ./pool/frontend/internal/fiobench -dir /var/tmp/fiobench -runtime 10s
//
// Needs root, /dev/fuse, loop devices, mkfs.ext4, losetup and fio.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/ballast-io/ballast/pool/frontend"
	"github.com/ballast-io/ballast/pool/frontend/fuseloop"
	"github.com/ballast-io/ballast/pool/frontend/internal/filedev"
)

type job struct {
	name string
	args []string
	read bool // report read side
}

var jobs = []job{
	{"seq-write-1M", []string{"--rw=write", "--bs=1M", "--iodepth=16", "--ioengine=libaio"}, false},
	{"seq-read-1M", []string{"--rw=read", "--bs=1M", "--iodepth=16", "--ioengine=libaio"}, true},
	{"rand-write-4k-qd16", []string{"--rw=randwrite", "--bs=4k", "--iodepth=16", "--ioengine=libaio"}, false},
	{"rand-read-4k-qd16", []string{"--rw=randread", "--bs=4k", "--iodepth=16", "--ioengine=libaio"}, true},
	{"write-4k-fsync1", []string{"--rw=randwrite", "--bs=4k", "--iodepth=1", "--ioengine=psync", "--fsync=1"}, false},
}

type result struct{ iops, mibs float64 }

func main() {
	dir := flag.String("dir", "/var/tmp/fiobench", "scratch directory on the host disk")
	size := flag.Int64("size", 4<<30, "volume size in bytes")
	fileSize := flag.String("filesize", "1G", "fio file size")
	rt := flag.Duration("runtime", 10*time.Second, "fio runtime per job")
	procs := flag.Int("gomaxprocs", frontend.ReaderGOMAXPROCS, "GOMAXPROCS (go-fuse readers) for the FUSE server")
	only := flag.String("only", "", "run only jobs whose name contains this")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	log.SetFlags(0)

	os.RemoveAll(*dir)
	must(os.MkdirAll(*dir, 0o755))
	defer os.RemoveAll(*dir)

	sel := jobs[:0:0]
	for _, j := range jobs {
		if strings.Contains(j.name, *only) {
			sel = append(sel, j)
		}
	}

	// Plain loop device over a host file.
	rawFile := filepath.Join(*dir, "raw.img")
	must(os.WriteFile(rawFile, nil, 0o600))
	must(os.Truncate(rawFile, *size))
	out, err := exec.Command("losetup", "--find", "--show", "--direct-io=on", "--sector-size=4096", rawFile).Output()
	must(err)
	rawLoop := strings.TrimSpace(string(out))
	raw := runAll("loop", rawLoop, filepath.Join(*dir, "mnt-raw"), sel, *fileSize, *rt)
	exec.Command("losetup", "-d", rawLoop).Run()

	// fuseloop export of an O_DIRECT file-backed Device.
	dev, err := filedev.Open(filepath.Join(*dir, "fuse.img"), *size)
	must(err)
	exp, err := fuseloop.New(filepath.Join(*dir, "state"), fuseloop.Options{})
	must(err)
	devPath, err := exp.Export("bench", dev)
	must(err)
	fuse := runAll("fuseloop", devPath, filepath.Join(*dir, "mnt-fuse"), sel, *fileSize, *rt)
	must(exp.Unexport("bench"))
	dev.Close()

	fmt.Printf("\nGOMAXPROCS=%d, NumCPU=%d, runtime %v per job\n", *procs, runtime.NumCPU(), *rt)
	fmt.Printf("%-20s %12s %12s %12s %12s %7s\n", "job", "loop IOPS", "loop MiB/s", "fuse IOPS", "fuse MiB/s", "ratio")
	for _, j := range sel {
		r, f := raw[j.name], fuse[j.name]
		fmt.Printf("%-20s %12.0f %12.1f %12.0f %12.1f %6.2fx\n", j.name, r.iops, r.mibs, f.iops, f.mibs, f.iops/r.iops)
	}
}

func runAll(label, devPath, mnt string, sel []job, fileSize string, rt time.Duration) map[string]result {
	must(os.MkdirAll(mnt, 0o755))
	run("mkfs.ext4", "-q", "-F", devPath)
	run("mount", devPath, mnt)
	defer run("umount", mnt)
	res := map[string]result{}
	for _, j := range sel {
		args := append([]string{"--name=" + j.name, "--directory=" + mnt, "--filename=" + j.name + ".dat",
			"--size=" + fileSize, "--direct=1", "--time_based", fmt.Sprintf("--runtime=%ds", int(rt.Seconds())),
			"--group_reporting", "--output-format=json"}, j.args...)
		cmd := exec.Command("fio", args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		os.Remove(filepath.Join(mnt, j.name+".dat"))
		run("sync")
		if err != nil {
			log.Printf("%s %s: fio: %v\n%s", label, j.name, err, stderr.String())
			continue
		}
		var r struct {
			Jobs []struct {
				Read, Write struct {
					IOPS float64 `json:"iops"`
					BW   float64 `json:"bw"` // KiB/s
				}
			} `json:"jobs"`
		}
		if i := strings.IndexByte(string(out), '{'); i > 0 {
			out = out[i:]
		}
		if err := json.Unmarshal(out, &r); err != nil || len(r.Jobs) == 0 {
			log.Printf("%s %s: bad fio output: %v", label, j.name, err)
			continue
		}
		side := r.Jobs[0].Write
		if j.read {
			side = r.Jobs[0].Read
		}
		res[j.name] = result{side.IOPS, side.BW / 1024}
		log.Printf("%-9s %-20s %10.0f IOPS %8.1f MiB/s", label, j.name, side.IOPS, side.BW/1024)
	}
	return res
}

func run(name string, args ...string) {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		log.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
