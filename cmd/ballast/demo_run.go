package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ballast-io/ballast/workloads/demo"
	"github.com/ballast-io/ballast/workloads/sensors"
)

// scenarioFlags declares what the scenario does on c.
func scenarioFlags(c *cobra.Command, sc *demo.ScenarioConfig) {
	f := c.Flags()
	f.StringSliceVar(&sc.Steps, "steps", demo.Steps, "steps, in order: kill-cql, kill-broker, kill-daemon, burst")
	f.IntVar(&sc.Rate, "rate", 200, "readings per second of the steady producer")
	f.IntVar(&sc.Sensors, "sensors", 50, "sensors of the steady producer")
	f.IntVar(&sc.Burst, "burst", 160000, "readings in the burst step")
	f.IntVar(&sc.BurstRate, "burst-rate", 4000, "readings per second of the burst")
	f.IntVar(&sc.IngestMaxRate, "ingest-max-rate", 1500, "most readings per second of one ingester (so one falls behind the burst)")
	f.DurationVar(&sc.Warmup, "warmup", 20*time.Second, "readings flow this long before the first step")
	f.DurationVar(&sc.Settle, "settle", 10*time.Second, "after a failover, how long the killed node stays down")
	f.DurationVar(&sc.StepTimeout, "step-timeout", 3*time.Minute, "longest wait for a step's recovery")
	f.StringVar(&sc.Stack, "stack", demo.DefaultStack, "Swarm stack name")
	f.StringVar(&sc.ReportDir, "report", "demo-report", "directory of the report (index.html, PNGs, samples)")
}

// scenario runs the scenario on c, writes the report and prints the
// summary; the error is non-nil unless the verdict is good.
func scenario(cmd *cobra.Command, c *demo.Cluster, sc demo.ScenarioConfig) error {
	res, err := demo.RunScenario(cmd.Context(), c, sc)
	if res == nil {
		return err
	}
	if werr := demo.WriteReport(sc.ReportDir, res); werr != nil {
		return errors.Join(err, werr)
	}
	demo.Summary(cmd.OutOrStdout(), res, sc.ReportDir)
	if err != nil {
		return err
	}
	if !res.OK() {
		return errors.New("demo: readings are missing")
	}
	return nil
}

// demoRunCmd is "ballast demo run" (make demo): up, scenario, report, down.
func demoRunCmd(cfg *demo.Config) *cobra.Command {
	var sc demo.ScenarioConfig
	var keep bool
	c := &cobra.Command{
		Use:   "run",
		Short: "The whole demo: bring up the Swarm, deploy the sensor stack, kill nodes while readings flow, verify none is lost, write the report, tear down",
		Long: "Brings up the demo's Docker Swarm (as `demo up`), deploys deploy/swarm/sensors.yml on it, and while readings flow " +
			"docker-kills the node running the CQL server, then the one running the broker, kill -9s the Ballast daemon under the " +
			"CQL server, and sends a burst the ingesters scale out for. Swarm reschedules, the volumes follow. At the end every " +
			"reading produced must be stored (`ballast workload verify`); the report (--report: index.html, PNGs, samples) shows " +
			"the timeline, rates, lag and failover times. Exits non-zero when a reading is missing or a step did not recover. " +
			"Removes everything it made at the end and on Ctrl-C, unless --keep.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := defaultBinary(cfg); err != nil {
				return err
			}
			c, err := demo.Up(cmd.Context(), *cfg)
			if err != nil {
				return err
			}
			defer func() {
				if keep {
					fmt.Fprintf(cmd.OutOrStdout(), "kept: remove with `ballast demo down --name %s`\n", cfg.Name)
					return
				}
				ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 5*time.Minute)
				defer cancel()
				if err := demo.Down(ctx, *cfg); err != nil {
					fmt.Fprintf(os.Stderr, "demo down: %v\n", err)
				}
			}()
			return scenario(cmd, c, sc)
		},
	}
	upFlags(c, cfg)
	scenarioFlags(c, &sc)
	c.Flags().BoolVar(&keep, "keep", false, "leave the Swarm and the stack running at the end")
	return c
}

// demoScenarioCmd is "ballast demo scenario": the scenario on a demo that
// is up (make demo-up).
func demoScenarioCmd(cfg *demo.Config) *cobra.Command {
	var sc demo.ScenarioConfig
	var keep bool
	c := &cobra.Command{
		Use:   "scenario",
		Short: "Run the failure scenario and write the report on a demo that is up (ballast demo up); the stack is removed at the end unless --keep",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := demo.Attach(cmd.Context(), *cfg)
			if err != nil {
				return err
			}
			err = scenario(cmd, c, sc)
			if !keep {
				ctx, cancel := context.WithTimeout(context.WithoutCancel(cmd.Context()), 3*time.Minute)
				defer cancel()
				err = errors.Join(err, demo.RemoveStack(ctx, c, sc.Stack))
			}
			return err
		},
	}
	scenarioFlags(c, &sc)
	c.Flags().BoolVar(&keep, "keep", false, "leave the stack and its volumes running at the end")
	return c
}

// demoMonitorCmd is "ballast demo monitor", run by the scenario in a
// container on the Swarm leader.
func demoMonitorCmd() *cobra.Command {
	cfg := demo.MonitorConfig{Topic: sensors.Topic, Group: sensors.Group}
	c := &cobra.Command{
		Use:    "monitor",
		Short:  "Print, every --interval, a JSON line on the sensor stack: readings produced and stored, where its tasks run, where its volumes are attached",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo.Monitor(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringSliceVar(&cfg.Kafka.Brokers, "brokers", []string{"kafka:9092"}, "Kafka bootstrap brokers")
	f.StringVar(&cfg.Stack, "stack", demo.DefaultStack, "Swarm stack")
	f.StringVar(&cfg.DockerHost, "docker-host", "", "a Swarm manager's engine (default: $DOCKER_HOST, else the local socket)")
	f.StringVar(&cfg.BallastSocket, "ballast-socket", "/run/ballast/ballast.sock", "the node's Ballast daemon socket")
	f.DurationVar(&cfg.Interval, "interval", time.Second, "time between samples")
	return c
}
