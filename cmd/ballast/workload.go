package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ballast-io/ballast/workloads/autoscale"
	"github.com/ballast-io/ballast/workloads/cql"
	"github.com/ballast-io/ballast/workloads/kafka"
	"github.com/ballast-io/ballast/workloads/sensors"
)

// newWorkloadCmd is "ballast workload": the IoT sensor pipeline that ships
// with Ballast (workloads/), with embedded Kafka and CQL servers so it runs
// on a machine with neither installed.
func newWorkloadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "workload",
		Short: "The sensor pipeline workload: embedded Kafka and CQL servers, producer, ingester, verifier",
		Long: "The IoT sensor pipeline of the reference demo: simulated sensors produce temperature readings to the Kafka topic " +
			sensors.Topic + ", an ingester moves them through consumer group " + sensors.Group + " into the Cassandra table " +
			sensors.DefaultKeyspace + ".temperature_by_day, and verify checks every reading in the topic is stored. " +
			"`workload kafka` and `workload cql` are embedded servers keeping their data in a directory (a Ballast volume, in the demo); " +
			"produce, ingest and verify work the same against Apache Kafka and Apache Cassandra.",
	}
	cmd.AddCommand(workloadKafka(), workloadCQL(), workloadProduce(), workloadIngest(), workloadVerify(), workloadAutoscale(), workloadHealthcheck())
	return cmd
}

// runFlags adds the flags every workload subcommand has, --log-level and
// a hidden --cpuprofile FILE (for performance work), and returns the
// function a command runs first: it makes the logger and starts the
// profile, whose stop the command defers.
func runFlags(fl *pflag.FlagSet) func() (log *slog.Logger, stop func(), err error) {
	level := fl.String("log-level", "info", "debug, info, warn or error")
	profile := fl.String("cpuprofile", "", "write a CPU profile to this file")
	fl.MarkHidden("cpuprofile")
	return func() (*slog.Logger, func(), error) {
		log, err := newLogger(*level, false)
		if err != nil {
			return nil, nil, err
		}
		if *profile == "" {
			return log, func() {}, nil
		}
		f, err := os.Create(*profile)
		if err != nil {
			return nil, nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, nil, err
		}
		return log, func() { pprof.StopCPUProfile(); f.Close() }, nil
	}
}

func workloadKafka() *cobra.Command {
	var cfg kafka.Config
	var partitions int
	cmd := &cobra.Command{
		Use:   "kafka --data-dir DIR [--listen 127.0.0.1:9092]",
		Short: "Run an embedded Kafka-protocol broker whose log, topics and group offsets live in DIR",
		Long: "A single Kafka-protocol broker (franz-go's kfake) for the workload: topics, records and committed consumer-group offsets " +
			"are kept in --data-dir and reloaded when it starts again. " + sensors.Topic + " is created with --partitions partitions " +
			"on the first start; other topics are created on first use. Runs until SIGTERM or Ctrl-C.",
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	fl.StringVar(&cfg.Dir, "data-dir", "", "directory of the broker's log (required)")
	fl.StringVar(&cfg.Listen, "listen", "127.0.0.1:9092", "address to listen on")
	fl.StringVar(&cfg.Advertise, "advertise", "", "host:port clients are told to connect to (default: --listen; needed when listening on 0.0.0.0)")
	fl.IntVar(&partitions, "partitions", 6, "partitions of "+sensors.Topic+" and of topics created on first use")
	fl.BoolVar(&cfg.SyncWrites, "sync-writes", false, "fsync every produced batch before acknowledging it (survives a machine crash, not only a broker crash; slower)")
	fl.IntVar(&cfg.MaxRequestBytes, "max-request-bytes", kafka.DefaultMaxRequestBytes, "largest request a client may send, in bytes (Apache Kafka's socket.request.max.bytes); a client claiming more is disconnected")
	start := runFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if cfg.Dir == "" {
			return errors.New("--data-dir is required")
		}
		if partitions < 1 {
			return fmt.Errorf("--partitions %d: give at least 1", partitions)
		}
		log, stop, err := start()
		if err != nil {
			return err
		}
		defer stop()
		cfg.Logger, cfg.DefaultPartitions = log, partitions
		cfg.Topics = []kafka.Topic{{Name: sensors.Topic, Partitions: int32(partitions)}}
		b, err := kafka.Start(cfg)
		if err != nil {
			return err
		}
		log.Info("kafka broker listening", "addr", b.Addr(), "data_dir", cfg.Dir)
		<-cmd.Context().Done()
		log.Info("kafka broker stopping: saving state")
		b.Close()
		return nil
	}
	return cmd
}

func workloadCQL() *cobra.Command {
	var dir, listen string
	cmd := &cobra.Command{
		Use:   "cql --data-dir DIR [--listen 127.0.0.1:9042]",
		Short: "Run an embedded CQL (Cassandra native protocol v4) server whose tables live in DIR",
		Long: "A single-node CQL server for the workload, speaking the Cassandra native protocol v4 to drivers such as gocql, " +
			"over an embedded storage engine (pebble, fsynced commits) in --data-dir. It stands in for Apache Cassandra in " +
			"demos and tests: it serves the subset of CQL the workload and common drivers use (DDL, INSERT/UPDATE/DELETE, " +
			"SELECT by partition with clustering ranges, paging, prepared statements, batches), not Cassandra's clustering, " +
			"TTLs or lightweight transactions; point --cassandra at Apache Cassandra or ScyllaDB in production. " +
			"Runs until SIGTERM or Ctrl-C.",
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "data-dir", "", "directory of the server's tables (required)")
	fl.StringVar(&listen, "listen", "127.0.0.1:9042", "address to listen on")
	start := runFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if dir == "" {
			return errors.New("--data-dir is required")
		}
		log, stop, err := start()
		if err != nil {
			return err
		}
		defer stop()
		srv, err := cql.Open(cql.Config{Dir: dir, Logger: log})
		if err != nil {
			return fmt.Errorf("open CQL store in %s: %w", dir, err)
		}
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			srv.Close()
			return fmt.Errorf("CQL server: %w", err)
		}
		log.Info("CQL server listening", "addr", ln.Addr().String(), "data_dir", dir)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln) }()
		select {
		case <-cmd.Context().Done():
		case err := <-served:
			srv.Close()
			return fmt.Errorf("CQL server: %w", err)
		}
		log.Info("CQL server stopping")
		return srv.Close()
	}
	return cmd
}

// lessGC makes the collector run less often (GOGC 400 instead of 100) in
// the producer and the ingester: they allocate fast, live data is small,
// memory is plenty. GOGC in the environment wins.
func lessGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// kafkaFlags are the flags of every client of the topic.
func kafkaFlags(fl *pflag.FlagSet) *sensors.KafkaConfig {
	k := &sensors.KafkaConfig{}
	fl.StringSliceVar(&k.Brokers, "brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers, host:port, comma-separated")
	fl.BoolVar(&k.TLS.Enable, "kafka-tls", false, "connect to Kafka over TLS")
	fl.StringVar(&k.TLS.CAFile, "kafka-ca", "", "PEM CA bundle to verify the brokers with (default: the system's)")
	fl.StringVar(&k.TLS.CertFile, "kafka-cert", "", "client certificate (PEM) for mutual TLS, with --kafka-key")
	fl.StringVar(&k.TLS.KeyFile, "kafka-key", "", "client key (PEM) for mutual TLS")
	fl.BoolVar(&k.TLS.Insecure, "kafka-tls-insecure", false, "do not verify the brokers' certificates")
	fl.StringVar(&k.Mechanism, "kafka-sasl-mechanism", "", "SASL mechanism: plain, scram-sha-256 or scram-sha-512 (default plain when a user is given)")
	fl.StringVar(&k.User, "kafka-sasl-user", "", "SASL user")
	fl.StringVar(&k.Password, "kafka-sasl-password", "", "SASL password (default: env BALLAST_KAFKA_PASSWORD)")
	return k
}

// passwords fills in the passwords not given as flags from the
// environment (read at run time: a default would show in --help).
func passwords(k *sensors.KafkaConfig, c *sensors.CassandraConfig) {
	if k != nil && k.Password == "" {
		k.Password = os.Getenv("BALLAST_KAFKA_PASSWORD")
	}
	if c != nil && c.Password == "" {
		c.Password = os.Getenv("BALLAST_CASSANDRA_PASSWORD")
	}
}

// cassandraFlags are the flags of every client of the store.
func cassandraFlags(fl *pflag.FlagSet) *sensors.CassandraConfig {
	c := &sensors.CassandraConfig{}
	fl.StringSliceVar(&c.Hosts, "cassandra", []string{"127.0.0.1:9042"}, "Cassandra contact points, host or host:port, comma-separated")
	fl.StringVar(&c.User, "cassandra-user", "", "user (PasswordAuthenticator)")
	fl.StringVar(&c.Password, "cassandra-password", "", "password (default: env BALLAST_CASSANDRA_PASSWORD)")
	fl.BoolVar(&c.TLS.Enable, "cassandra-tls", false, "connect to Cassandra over TLS")
	fl.StringVar(&c.TLS.CAFile, "cassandra-ca", "", "PEM CA bundle to verify the nodes with (default: the system's)")
	fl.StringVar(&c.TLS.CertFile, "cassandra-cert", "", "client certificate (PEM) for mutual TLS, with --cassandra-key")
	fl.StringVar(&c.TLS.KeyFile, "cassandra-key", "", "client key (PEM) for mutual TLS")
	fl.BoolVar(&c.TLS.Insecure, "cassandra-tls-insecure", false, "do not verify the nodes' certificates")
	fl.StringVar(&c.Consistency, "consistency", "LOCAL_QUORUM", "consistency level of reads and writes")
	fl.StringVar(&c.Keyspace, "keyspace", sensors.DefaultKeyspace, "keyspace of the tables")
	fl.IntVar(&c.ReplicationFactor, "replication-factor", 1, "replication factor of the keyspace when ingest creates it (SimpleStrategy)")
	fl.DurationVar(&c.Timeout, "cassandra-timeout", 10*time.Second, "timeout of one query")
	return c
}

func workloadProduce() *cobra.Command {
	cfg := sensors.ProducerConfig{}
	cmd := &cobra.Command{
		Use:   "produce [--brokers HOST:PORT] [--sensors 50] (--rate R | --count N)",
		Short: "Simulate sensors producing temperature readings to " + sensors.Topic,
		Long: "Simulated sensors whose temperatures walk at random produce JSON readings " +
			`{"machineid","temperature","eventdate"} keyed by sensor id. eventdate is RFC 3339 in UTC with milliseconds ` +
			`("2026-09-18T10:11:12.345Z"); a sensor takes at most one reading per millisecond, so at most 1000/s per sensor. ` +
			"Without --count it runs until Ctrl-C; a failed write is retried until the broker takes it.",
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	k := kafkaFlags(fl)
	fl.StringVar(&cfg.Topic, "topic", sensors.Topic, "topic to produce to")
	fl.IntVar(&cfg.Sensors, "sensors", 50, "number of sensors")
	fl.StringVar(&cfg.Prefix, "sensor-prefix", "sensor", "sensor ids are PREFIX-0001, PREFIX-0002, ...")
	fl.Uint64Var(&cfg.Seed, "seed", 1, "random seed of the temperatures")
	fl.Float64Var(&cfg.Rate, "rate", 0, "readings per second over all sensors (0: as fast as the broker takes them)")
	fl.Int64Var(&cfg.Count, "count", 0, "stop after this many readings (0: until Ctrl-C)")
	fl.IntVar(&cfg.Partitions, "partitions", 0, "create the topic with this many partitions if it does not exist (0: leave it to the broker)")
	fl.DurationVar(&cfg.Progress, "progress", 5*time.Second, "how often to log a progress line")
	start := runFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		log, stop, err := start()
		if err != nil {
			return err
		}
		defer stop()
		passwords(k, nil)
		cfg.Kafka, cfg.Logger = *k, log
		lessGC()
		st, err := sensors.Produce(cmd.Context(), cfg)
		fmt.Fprintf(cmd.OutOrStdout(), "produced %d readings in %.1fs (%.0f/s)\n", st.Produced, st.Elapsed.Seconds(),
			float64(st.Produced)/max(st.Elapsed.Seconds(), 1e-9))
		return err
	}
	return cmd
}

func workloadIngest() *cobra.Command {
	cfg := sensors.IngestConfig{}
	var naive, noSchema bool
	cmd := &cobra.Command{
		Use:   "ingest [--brokers HOST:PORT] [--cassandra HOST:PORT]",
		Short: "Move readings from consumer group " + sensors.Group + " into " + sensors.DefaultKeyspace + ".temperature_by_day",
		Long: "Consumes " + sensors.Topic + " in consumer group " + sensors.Group + " and writes each reading to temperature_by_day " +
			"(PRIMARY KEY ((sensor_id, event_date), event_time), event_time in milliseconds), with prepared statements in unlogged " +
			"batches grouped by partition. Offsets are committed only after the readings are written (at-least-once; rewriting a " +
			"reading is an idempotent upsert). Readings over --threshold update last_alert_per_sensor. Malformed messages are counted " +
			"and copied to " + sensors.DeadLetterTopic + " with headers naming their source and the error. Partition lag is published " +
			"to " + sensors.LagTopic + ". Writes are retried with backoff while the broker or the store is down. Runs until Ctrl-C. " +
			"--naive runs the reference design instead (one synchronous INSERT per message, auto-commit), the benchmark's baseline.",
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	k := kafkaFlags(fl)
	c := cassandraFlags(fl)
	fl.StringVar(&cfg.Topic, "topic", sensors.Topic, "topic to consume")
	fl.StringVar(&cfg.Group, "group", sensors.Group, "consumer group")
	fl.StringVar(&cfg.DeadLetterTopic, "dead-letter-topic", sensors.DeadLetterTopic, "topic for malformed messages")
	fl.StringVar(&cfg.LagTopic, "lag-topic", sensors.LagTopic, "topic for partition lag reports")
	fl.Float64Var(&cfg.Threshold, "threshold", sensors.DefaultThreshold, "temperature (°C) above which a reading updates last_alert_per_sensor")
	fl.IntVar(&cfg.ChunkRows, "chunk", 8192, "most messages handled and committed at once")
	fl.DurationVar(&cfg.Linger, "linger", 10*time.Millisecond, "how long a chunk waits to fill up")
	fl.IntVar(&cfg.BatchRows, "batch-rows", 64, "most readings in one unlogged batch (one partition per batch)")
	fl.IntVar(&cfg.Writers, "writers", 32, "batches written concurrently")
	fl.Float64Var(&cfg.MaxRate, "max-rate", 0, "most readings handled per second by this ingester (0: no cap; the demo caps them so scaling out shows on one machine)")
	fl.DurationVar(&cfg.SessionTimeout, "session-timeout", 10*time.Second, "consumer group session timeout (a killed ingester's partitions move after this)")
	fl.DurationVar(&cfg.LagInterval, "lag-interval", 5*time.Second, "how often to publish partition lag")
	fl.DurationVar(&cfg.Progress, "progress", 5*time.Second, "how often to log a progress line")
	fl.StringVar(&cfg.StatsFile, "stats-file", "", "write the counters and the produce-to-stored latency histogram as JSON to this file")
	fl.DurationVar(&cfg.StatsInterval, "stats-interval", time.Second, "how often to write --stats-file")
	fl.BoolVar(&noSchema, "no-create-schema", false, "do not create the keyspace and tables (they must exist)")
	fl.BoolVar(&naive, "naive", false, "run the reference design's consumer (one INSERT per message) instead")
	start := runFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		log, stop, err := start()
		if err != nil {
			return err
		}
		defer stop()
		if math.IsNaN(cfg.Threshold) || cfg.ChunkRows < 1 || cfg.BatchRows < 1 || cfg.Writers < 1 {
			return errors.New("--threshold must be a number; --chunk, --batch-rows and --writers at least 1")
		}
		if math.IsNaN(cfg.MaxRate) || cfg.MaxRate < 0 {
			return fmt.Errorf("--max-rate %v: give readings per second, 0 for no cap", cfg.MaxRate)
		}
		passwords(k, c)
		cfg.Kafka, cfg.Cassandra, cfg.Logger, cfg.CreateSchema = *k, *c, log, !noSchema
		lessGC()
		if cfg.Progress <= 0 {
			cfg.Progress = -1
		}
		if naive {
			n, err := sensors.NewNaiveIngester(cfg)
			if err != nil {
				return err
			}
			err = n.Run(cmd.Context())
			log.Info("naive ingester stopped", "stored", n.Stored())
			return err
		}
		in, err := sensors.NewIngester(cfg)
		if err != nil {
			return err
		}
		log.Info("ingesting", "topic", cfg.Topic, "group", cfg.Group, "brokers", k.Brokers, "cassandra", c.Hosts, "keyspace", c.Keyspace)
		err = in.Run(cmd.Context())
		st := in.Stats()
		log.Info("ingester stopped", "stored", st.Stored, "malformed", st.Malformed, "alerts", st.Alerts,
			"batches", st.Batches, "chunks", st.Chunks, "store_retries", st.StoreRetries,
			"p99_ms", fmt.Sprintf("%.1f", float64(in.Latency().Quantile(0.99))/1e6))
		return err
	}
	return cmd
}

func workloadVerify() *cobra.Command {
	cfg := sensors.VerifyConfig{}
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--brokers HOST:PORT] [--cassandra HOST:PORT] [--wait 1m] [--json]",
		Short: "Check every reading in " + sensors.Topic + " is stored; exit non-zero on any missing",
		Long: "Reads " + sensors.Topic + " from its first offset to its end (a reader of its own, not the consumer group), then reads " +
			"the stored days of every sensor and compares reading by reading (sensor and millisecond): per sensor, the readings " +
			"produced, stored, missing, stored with another temperature, and lost because two readings of a sensor share a " +
			"millisecond. Malformed messages in the topic must be in " + sensors.DeadLetterTopic + ". Exits non-zero if anything " +
			"is missing. --wait re-reads the store while readings are missing (an ingester still catching up).",
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	k := kafkaFlags(fl)
	c := cassandraFlags(fl)
	fl.StringVar(&cfg.Topic, "topic", sensors.Topic, "topic the readings were produced to")
	fl.StringVar(&cfg.DeadLetterTopic, "dead-letter-topic", sensors.DeadLetterTopic, "topic the ingester sends malformed messages to")
	fl.DurationVar(&cfg.Wait, "wait", 0, "keep re-reading the store while readings are missing, up to this long")
	fl.Float64Var(&cfg.Threshold, "threshold", sensors.DefaultThreshold, "the ingester's alert threshold (°C)")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	start := runFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		log, stop, err := start()
		if err != nil {
			return err
		}
		defer stop()
		passwords(k, c)
		cfg.Kafka, cfg.Cassandra, cfg.Logger = *k, *c, log
		rep, err := sensors.Verify(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		out := cmd.OutOrStdout()
		if asJSON {
			if err := printJSON(out, rep); err != nil {
				return err
			}
		} else {
			printVerify(out, rep)
		}
		if !rep.OK {
			return fmt.Errorf("verify: %d of %d readings not stored as produced (%d missing, %d with another temperature, %d overwritten), "+
				"%d malformed messages not dead-lettered, %d sensors without their last alert",
				rep.Total.Lost(), rep.Total.Produced+rep.Total.Overwritten, rep.Total.Missing, rep.Total.Mismatched, rep.Total.Overwritten,
				rep.NotDeadLettered, len(rep.WrongAlerts))
		}
		return nil
	}
	return cmd
}

func workloadAutoscale() *cobra.Command {
	opts := autoscale.Options{Config: autoscale.DefaultConfig}
	lw := sensors.LagWatchConfig{}
	var dockerHost, eventsFile string
	cmd := &cobra.Command{
		Use:   "autoscale --service NAME [--brokers HOST:PORT] [--min 1] [--max 4] [--docker-host unix:///var/run/docker.sock]",
		Short: "Scale the ingester's Docker Swarm service with consumer group " + sensors.Group + "'s lag",
		Long: "Follows the partition lag the ingesters publish to " + sensors.LagTopic + " and scales the replicated Docker Swarm " +
			"service --service (the ingesters) between --min and --max replicas through the Docker Engine API (service update, " +
			"retried when another update races it), with hysteresis: out by --scale-out-step when the lag per replica has stayed " +
			"above --scale-out-lag for --scale-out-after, in by --scale-in-step when it has stayed below --scale-in-lag for " +
			"--scale-in-after, never twice within --cooldown; a lag report older than --stale-after holds. Each decision is logged; " +
			"--events writes the starting replicas and each change as JSON lines. --docker-host must reach a swarm manager. " +
			"On Kubernetes use KEDA instead (deploy/kubernetes/workload/). Runs until Ctrl-C.",
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	k := kafkaFlags(fl)
	fl.StringVar(&opts.Service, "service", "", "the ingesters' Swarm service, name or ID (required)")
	fl.StringVar(&dockerHost, "docker-host", "", "Docker engine of a swarm manager (default: $DOCKER_HOST, else unix:///var/run/docker.sock)")
	fl.IntVar(&opts.Min, "min", opts.Min, "fewest replicas (at least 1: the ingesters report the lag)")
	fl.IntVar(&opts.Max, "max", opts.Max, "most replicas")
	fl.DurationVar(&opts.Interval, "interval", 2*time.Second, "time between decisions")
	fl.Int64Var(&opts.ScaleOutLag, "scale-out-lag", opts.ScaleOutLag, "lag per replica (records) above which to scale out")
	fl.DurationVar(&opts.ScaleOutAfter, "scale-out-after", opts.ScaleOutAfter, "how long the lag must stay above --scale-out-lag")
	fl.Int64Var(&opts.ScaleInLag, "scale-in-lag", opts.ScaleInLag, "lag per replica (records) below which to scale in")
	fl.DurationVar(&opts.ScaleInAfter, "scale-in-after", opts.ScaleInAfter, "how long the lag must stay below --scale-in-lag")
	fl.IntVar(&opts.ScaleOutStep, "scale-out-step", opts.ScaleOutStep, "replicas added at once")
	fl.IntVar(&opts.ScaleInStep, "scale-in-step", opts.ScaleInStep, "replicas removed at once")
	fl.DurationVar(&opts.Cooldown, "cooldown", opts.Cooldown, "after a change, no other for this long")
	fl.DurationVar(&opts.StaleAfter, "stale-after", opts.StaleAfter, "hold when the newest lag report is older than this")
	fl.StringVar(&lw.LagTopic, "lag-topic", sensors.LagTopic, "topic the ingesters publish their lag to")
	fl.StringVar(&lw.Group, "group", sensors.Group, "the ingesters' consumer group")
	fl.StringVar(&lw.Topic, "topic", sensors.Topic, "the topic they consume")
	fl.StringVar(&eventsFile, "events", "", "append the starting replicas and every change to this file, as JSON lines")
	start := runFlags(fl)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if opts.Service == "" {
			return errors.New("--service is required")
		}
		if err := opts.Validate(); err != nil {
			return err
		}
		log, stop, err := start()
		if err != nil {
			return err
		}
		defer stop()
		passwords(k, nil)
		lw.Kafka, lw.Logger, opts.Logger = *k, log, log
		w, err := sensors.NewLagWatcher(lw)
		if err != nil {
			return err
		}
		sc, err := autoscale.NewSwarmScaler(dockerHost, opts.Service)
		if err != nil {
			return err
		}
		defer sc.Close()
		if eventsFile != "" {
			f, err := os.OpenFile(eventsFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			opts.Events = f
		}
		ctx, cancel := context.WithCancel(cmd.Context())
		defer cancel()
		watchErr := make(chan error, 1)
		go func() { watchErr <- w.Run(ctx) }()
		src := autoscale.WatcherSource(w)
		log.Info("autoscale", "service", opts.Service, "brokers", k.Brokers, "lag_topic", lw.LagTopic, "group", lw.Group)
		err = autoscale.Run(ctx, opts, src, sc)
		cancel()
		return errors.Join(err, <-watchErr)
	}
	return cmd
}

func printVerify(w io.Writer, rep sensors.VerifyReport) {
	rows := make([][]string, 0, len(rep.Sensors)+1)
	for _, s := range append(rep.Sensors, rep.Total) {
		rows = append(rows, []string{s.SensorID, strconv.Itoa(s.Messages), strconv.Itoa(s.Produced), strconv.Itoa(s.Stored),
			strconv.Itoa(s.Missing), strconv.Itoa(s.Mismatched), strconv.Itoa(s.Overwritten), strconv.Itoa(s.Extra), orDash(s.FirstMissing)})
	}
	table(w, []string{"SENSOR", "MESSAGES", "PRODUCED", "STORED", "MISSING", "MISMATCHED", "OVERWRITTEN", "EXTRA", "FIRST MISSING"}, rows)
	fmt.Fprintf(w, "\ntopic %s: %d messages in %d partitions, %d sensors; %d malformed (%d dead-lettered)\n",
		rep.Topic, rep.Messages, rep.Partitions, len(rep.Sensors), rep.Malformed, rep.DeadLettered)
	fmt.Fprintf(w, "alerts: %d sensors went over the threshold, %d without their last alert stored %v\n",
		rep.Alerts, len(rep.WrongAlerts), rep.WrongAlerts)
	if rep.OK {
		fmt.Fprintf(w, "OK: all %d readings stored\n", rep.Total.Produced)
	} else {
		fmt.Fprintf(w, "FAILED: %d readings not stored as produced\n", rep.Total.Lost())
	}
}
