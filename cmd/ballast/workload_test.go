package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"
	kafka "github.com/segmentio/kafka-go"

	"github.com/ballast-io/ballast/workloads/sensors"
)

// The workload's end-to-end tests: real ballast processes (the embedded
// broker and CQL server, producer, ingester, verifier), no root needed.

// wlProc is a ballast subprocess started by a workload test; t.Cleanup
// kills it (by its PID) if the test has not stopped it.
type wlProc struct {
	t    *testing.T
	name string
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	log  string
	err  error // exit status, once done is closed
}

func wlStart(t *testing.T, dir, name string, args ...string) *wlProc {
	t.Helper()
	p := &wlProc{t: t, name: name, args: args, log: filepath.Join(dir, name+".log")}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("%s log (last lines):\n%s", name, lastLines(string(b), 25))
		}
	})
	return p
}

func (p *wlProc) start() {
	p.t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	fmt.Fprintf(f, "---- start %s\n", time.Now().Format(time.RFC3339Nano))
	p.cmd = exec.Command(ballastBin, append([]string{"workload"}, p.args...)...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("start %s: %v", p.name, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
}

// wait waits for the process to exit on its own and returns its status.
func (p *wlProc) wait(limit time.Duration) error {
	p.t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(limit):
		p.t.Fatalf("%s still running after %v", p.name, limit)
		return nil
	}
}

// stop sends SIGTERM and waits for the exit.
func (p *wlProc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
		p.kill()
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *wlProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *wlProc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// restart stops the process gracefully and starts it again, same args.
func (p *wlProc) restart() {
	p.t.Helper()
	p.stop()
	p.start()
}

// waitListening waits until addr accepts connections (and p still runs).
func (p *wlProc) waitListening(addr string) {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if !p.running() {
			p.t.Fatalf("%s exited (%v) before listening on %s", p.name, p.err, addr)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s not listening on %s after 30s", p.name, addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var storedRE = regexp.MustCompile(`msg=ingesting stored=(\d+)`)

// stored is the last "stored=N" progress count in an ingester's log since
// its last start.
func (p *wlProc) stored() int64 {
	b, _ := os.ReadFile(p.log)
	if i := bytes.LastIndex(b, []byte("---- start")); i >= 0 {
		b = b[i:]
	}
	m := storedRE.FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.ParseInt(string(m[len(m)-1][1]), 10, 64)
	return n
}

// waitStored waits until the ingester has stored at least n readings
// since its last start.
func (p *wlProc) waitStored(n int64, limit time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(limit)
	for p.stored() < n {
		if !p.running() {
			p.t.Fatalf("%s exited (%v)", p.name, p.err)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s stored %d readings after %v, want %d", p.name, p.stored(), limit, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wlEnv is an embedded broker and CQL server for one test.
type wlEnv struct {
	t                   *testing.T
	dir                 string
	kafkaAddr, cqlAddr  string
	kafka, cql          *wlProc
	clientArgs          []string // --brokers and --cassandra
	kafkaArgs, storeArg []string
}

func startWorkloadEnv(t *testing.T) *wlEnv {
	t.Helper()
	dir := t.TempDir()
	e := &wlEnv{t: t, dir: dir,
		kafkaAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		cqlAddr:   fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	e.kafka = wlStart(t, dir, "kafka", "kafka", "--data-dir", filepath.Join(dir, "kafka-data"), "--listen", e.kafkaAddr)
	e.cql = wlStart(t, dir, "cql", "cql", "--data-dir", filepath.Join(dir, "cql-data"), "--listen", e.cqlAddr)
	e.kafka.waitListening(e.kafkaAddr)
	e.cql.waitListening(e.cqlAddr)
	e.kafkaArgs = []string{"--brokers", e.kafkaAddr}
	e.storeArg = []string{"--cassandra", e.cqlAddr}
	e.clientArgs = append(append([]string{}, e.kafkaArgs...), e.storeArg...)
	return e
}

func (e *wlEnv) ingest(name string) *wlProc {
	return wlStart(e.t, e.dir, name, append([]string{"ingest", "--progress", "250ms", "--session-timeout", "6s", "--lag-interval", "1s"}, e.clientArgs...)...)
}

// verify runs ballast workload verify --json and returns its report and
// whether it exited 0.
func (e *wlEnv) verify(wait time.Duration) (sensors.VerifyReport, bool) {
	e.t.Helper()
	cmd := exec.Command(ballastBin, append([]string{"workload", "verify", "--json", "--wait", wait.String()}, e.clientArgs...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var rep sensors.VerifyReport
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		e.t.Fatalf("verify: %v, output %q: %v\n%s", err, stdout.String(), jerr, lastLines(stderr.String(), 20))
	}
	if err != nil {
		e.t.Logf("verify exited with %v: %s", err, lastLines(stderr.String(), 3))
	}
	return rep, err == nil
}

// produceMalformed writes messages the ingester must dead-letter.
func (e *wlEnv) produceMalformed(values ...string) {
	e.t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(e.kafkaAddr), Topic: sensors.Topic, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	for _, v := range values {
		if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("bad"), Value: []byte(v)}); err != nil {
			e.t.Fatal(err)
		}
	}
}

// TestWorkloadEndToEnd: 100k readings from 50 sensors (and a few malformed
// messages) through the embedded broker, the ingester and the embedded CQL
// server; verify finds every reading stored and the malformed ones in the
// dead-letter topic. Then a reading is deleted from the store behind the
// ingester's back, and verify must fail naming its sensor.
func TestWorkloadEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end: 100k readings")
	}
	e := startWorkloadEnv(t)
	const n = 100000
	prod := wlStart(t, e.dir, "produce", append([]string{"produce", "--sensors", "50", "--count", strconv.Itoa(n), "--seed", "7"}, e.kafkaArgs...)...)
	e.produceMalformed(`{"machineid":"sensor-0001","temperature":"hot","eventdate":"2026-01-01T00:00:00.000Z"}`, `not json`)
	in := e.ingest("ingest")
	if err := prod.wait(2 * time.Minute); err != nil {
		t.Fatalf("produce: %v", err)
	}
	in.waitStored(n, 2*time.Minute)
	rep, ok := e.verify(time.Minute)
	in.stop()
	if !ok || !rep.OK {
		t.Fatalf("verify failed: %+v", rep.Total)
	}
	if rep.Total.Produced != n || rep.Total.Stored != n || len(rep.Sensors) != 50 {
		t.Fatalf("verify: produced %d stored %d sensors %d, want %d, %d, 50", rep.Total.Produced, rep.Total.Stored, len(rep.Sensors), n, n)
	}
	if rep.Malformed != 2 || rep.DeadLettered != 2 {
		t.Fatalf("verify: %d malformed, %d dead-lettered, want 2 and 2", rep.Malformed, rep.DeadLettered)
	}
	if rep.Alerts == 0 {
		t.Errorf("no sensor went over the alert threshold: the alert path is untested")
	}

	// Lose one reading behind the ingester's back: verify must say so.
	victim := rep.Sensors[17]
	deleteOneReading(t, e.cqlAddr, victim.SensorID)
	rep, ok = e.verify(0)
	if ok || rep.OK || rep.Total.Missing != 1 {
		t.Fatalf("after deleting a reading of %s: exit ok %v, report ok %v, missing %d", victim.SensorID, ok, rep.OK, rep.Total.Missing)
	}
	for _, s := range rep.Sensors {
		if (s.Missing == 1) != (s.SensorID == victim.SensorID) {
			t.Errorf("sensor %s: %d missing", s.SensorID, s.Missing)
		}
	}
}

// deleteOneReading deletes the latest stored reading of sensor (taken
// today or yesterday, UTC).
func deleteOneReading(t *testing.T, cqlAddr, sensor string) {
	t.Helper()
	cl := gocql.NewCluster(cqlAddr)
	cl.Consistency = gocql.One
	s, err := cl.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for _, day := range []time.Time{today, today.Add(-24 * time.Hour)} {
		var at time.Time
		err := s.Query("SELECT event_time FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ? LIMIT 1", sensor, day).Scan(&at)
		if err == gocql.ErrNotFound {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Query("DELETE FROM sensors.temperature_by_day WHERE sensor_id = ? AND event_date = ? AND event_time = ?", sensor, day, at).Exec(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no reading of %s stored today or yesterday", sensor)
}

// TestWorkloadSurvivesRestarts: readings produced at a steady rate while
// the CQL server is restarted mid-ingest (SIGTERM), then the broker is
// killed with SIGKILL and started again on its data dir, then the
// ingester is killed with SIGKILL and started again. The producer and the
// ingester ride it out (retries, the consumer group's committed offsets,
// which the broker keeps in its data dir) and verify finds every reading
// stored.
func TestWorkloadSurvivesRestarts(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end with restarts")
	}
	e := startWorkloadEnv(t)
	const n = 60000
	prod := wlStart(t, e.dir, "produce", append([]string{"produce", "--sensors", "50", "--rate", "3000", "--count", strconv.Itoa(n), "--seed", "11", "--progress", "1s"}, e.kafkaArgs...)...)
	in := e.ingest("ingest")
	in.waitStored(3000, time.Minute)

	t.Log("restarting the CQL server")
	e.cql.restart()
	e.cql.waitListening(e.cqlAddr)
	before := in.stored()
	in.waitStored(before+3000, time.Minute)

	t.Log("kill -9 of the broker, then starting it again")
	e.kafka.kill()
	e.kafka.start()
	e.kafka.waitListening(e.kafkaAddr)
	before = in.stored()
	in.waitStored(before+3000, time.Minute)

	t.Log("kill -9 of the ingester")
	in.kill()
	in.start()
	in.waitStored(1, time.Minute)

	if err := prod.wait(2 * time.Minute); err != nil {
		t.Fatalf("produce: %v", err)
	}
	rep, ok := e.verify(90 * time.Second)
	if !ok || !rep.OK {
		t.Fatalf("verify failed: %+v", rep.Total)
	}
	if rep.Total.Produced != n || rep.Total.Stored != n || rep.Total.Lost() != 0 {
		t.Fatalf("verify: produced %d stored %d lost %d, want %d, %d, 0", rep.Total.Produced, rep.Total.Stored, rep.Total.Lost(), n, n)
	}
	in.stop()
	// What the outages looked like from the clients (for the log).
	for _, p := range []*wlProc{prod, in} {
		b, _ := os.ReadFile(p.log)
		t.Logf("%s: %d failed attempts retried, %d fetch errors, %d messages in the topic for %d readings",
			p.name, bytes.Count(b, []byte("msg=retrying")), bytes.Count(b, []byte("fetch from kafka failed")), rep.Total.Messages, n)
	}
}

// TestWorkloadBadInput: bad flags fail at once with an error naming the
// problem (no server needed).
func TestWorkloadBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"kafka"}, "--data-dir is required"},
		{[]string{"kafka", "--data-dir", t.TempDir(), "--listen", "nonsense"}, "listen address"},
		{[]string{"kafka", "--data-dir", t.TempDir(), "--advertise", "0.0.0.0:9092"}, "advertised address"},
		{[]string{"cql"}, "--data-dir is required"},
		{[]string{"produce", "--brokers", "localhost", "--count", "1"}, `broker address "localhost"`},
		{[]string{"produce", "--sensors", "0", "--count", "1"}, "0 sensors"},
		{[]string{"produce", "--kafka-sasl-mechanism", "gssapi", "--kafka-sasl-user", "u"}, "gssapi"},
		{[]string{"ingest", "--consistency", "most"}, `consistency "most"`},
		{[]string{"ingest", "--keyspace", "a-b"}, "keyspace"},
		{[]string{"ingest", "--writers", "0"}, "--writers"},
		{[]string{"ingest", "--kafka-ca", "/x"}, "TLS is not enabled"},
		{[]string{"verify", "--cassandra-tls", "--cassandra-ca", "/nonexistent"}, "CA file"},
	} {
		out, err := exec.Command(ballastBin, append([]string{"workload"}, c.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("ballast workload %s: %v, output %q; want an error naming %q", strings.Join(c.args, " "), err, lastLines(string(out), 3), c.want)
		}
	}
}
