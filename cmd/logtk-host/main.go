// Command logtk-host supervises worker processes and routes their log
// records. It is a thin command line over packages config, host and
// logserver.
//
//	logtk-host run      [-config plugins.hcl]   run the workers until they end or a signal arrives
//	logtk-host validate [-config plugins.hcl]   check the configuration; starts and dials nothing
//	logtk-host serve    [-config server.hcl]    run the log server of the server block
//	logtk-host version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/host"
	"github.com/logtk/logtk/internal/control"
	"github.com/logtk/logtk/internal/ipc"
	"github.com/logtk/logtk/internal/metrics"
	"github.com/logtk/logtk/internal/sdnotify"
	"github.com/logtk/logtk/logserver"
)

// version is set by the Makefile with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: logtk-host <command> [flags]

commands:
  run       [-config plugins.hcl]  start the workers; stop on SIGINT/SIGTERM or when all have ended
  validate  [-config plugins.hcl]  check the configuration without starting or dialling anything
  serve     [-config server.hcl]   run a log server (the server block) until SIGINT/SIGTERM
  version                          print the version (also --version)

operating a running host (found by its -config, or -socket):
  status    [-o text|json]         every worker instance: pid, state, uptime, restarts, last exit, records/s
  restart   NAME[#i]               restart gracefully, one instance after the other
  stop      NAME[#i]               stop gracefully; it stays stopped until started
  start     NAME[#i]               start a stopped or ended instance
  scale     NAME N                 run N instances of the worker NAME
  reload                           read the configuration again and apply what changed (also SIGHUP)

reading stored records:
  logs      [-f] [-worker NAME[#i]] [-level warn] [-since 10m] [-grep RE] [-o text|json] FILE|DIR...

"logtk-host <command> -h" describes a command's flags.
`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "version", "-version", "--version":
		switch {
		case len(args) > 1 && helpAsked(args[1:]):
			fmt.Fprintln(stdout, "usage: logtk-host version (or --version): print the version")
			return 0
		case len(args) > 1:
			fmt.Fprintf(stderr, "logtk-host version: unexpected argument %q\n", args[1])
			return 2
		}
		fmt.Fprintf(stdout, "logtk-host %s (IPC protocol %d)\n", version, ipc.ProtocolVersion)
		return 0
	case "validate":
		cfg, _, code := load(args[1:], "validate", "plugins.hcl", stdout, stderr)
		if cfg == nil {
			return code
		}
		n := 0
		for _, w := range cfg.Workers {
			n += w.Count
		}
		if sc := cfg.Server; sc != nil {
			var also string
			if sc.Syslog != nil {
				also += ", syslog"
			}
			if sc.OTLP != nil {
				also += ", OTLP"
			}
			if k := sc.Kafka; k != nil {
				also += fmt.Sprintf(", Kafka topics %s in group %s", strings.Join(k.Topics, ","), k.Group)
			}
			fmt.Fprintf(stdout, "configuration is valid: a server block (listen %s, dir %s, fsync %s, %d tokens%s), %d formats, %d transports for its stored batches\n",
				sc.Listen, sc.Dir, sc.Fsync, len(sc.Tokens), also, len(cfg.Formats), len(cfg.Transports))
			if len(cfg.Workers) == 0 {
				printConfigStages(stdout, cfg)
				return 0
			}
		}
		fmt.Fprintf(stdout, "configuration is valid: %d worker blocks, %d instances, %d formats, %d transports\n",
			len(cfg.Workers), n, len(cfg.Formats), len(cfg.Transports))
		printConfigStages(stdout, cfg)
		return 0
	case "run":
		// From the first moment, before the configuration (and its
		// plugins) is loaded: a SIGTERM then stops the host cleanly, a
		// SIGHUP reloads once it runs, not the signals' default (which
		// kills it: with the durable ingest on, a crash).
		sigs := make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sigs)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		cfg, path, code := load(args[1:], "run", "plugins.hcl", stdout, stderr)
		if cfg == nil {
			return code
		}
		return runHost(cfg, path, controlSocket(cfg, path), sigs, hup, stderr)
	case "serve":
		cfg, _, code := load(args[1:], "serve", "server.hcl", stdout, stderr)
		if cfg == nil {
			return code
		}
		return serve(cfg, stderr)
	case "logs":
		return logs(args[1:], stdout, stderr)
	case "status", "restart", "stop", "start", "scale", "reload":
		return client(args[0], args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "logtk-host: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

// load parses a command's flags and loads its configuration. It returns
// a nil Config and the exit status when there is nothing more to do: 0
// after -h (the help on stdout), 2 for bad usage, 1 for a bad
// configuration.
func load(args []string, name, defaultConfig string, stdout, stderr io.Writer) (*config.Config, string, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "configuration file")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: logtk-host %s [-config %s]\n\nflags:\n", name, defaultConfig)
		fs.PrintDefaults()
	}
	if helpAsked(args) {
		fs.SetOutput(stdout) // asked for: not an error
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, "", 0
		}
		return nil, "", 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "logtk-host %s: unexpected argument %q (the configuration is given as -config %s)\n", name, fs.Arg(0), fs.Arg(0))
		return nil, "", 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprint(stderr, config.FormatDiagnostics(err))
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(stderr)
		}
		return nil, "", 1
	}
	return cfg, *path, 0
}

// runHost runs the host until it ends or sigs says stop; hup asks for
// reloads. A signal that came before the host started is acted on once
// it has: the records a dead host left are routed first.
func runHost(cfg *config.Config, path, socket string, sigs, hup <-chan os.Signal, stderr io.Writer) int {
	logger := newLogger("logtk-host", stderr)
	if cfg.RuntimeDir == "" && (cfg.DurableIngest == nil || *cfg.DurableIngest) {
		cfg.RuntimeDir = config.DefaultRuntimeDir(path)
	}
	opts := host.Options{Logger: logger}
	var reg *prometheus.Registry
	if cfg.Metrics != nil {
		reg = metrics.NewRegistry()
		opts.Metrics = reg
	}
	h, err := host.New(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "logtk-host: %v\n", err)
		return 1
	}
	if reg != nil {
		m, err := metrics.Listen(cfg.Metrics.Listen, reg, func() bool { return !h.Stopping() })
		if err != nil {
			fmt.Fprintf(stderr, "logtk-host: metrics: %v\n", err)
			return 1
		}
		logger.Info("metrics listening", "address", m.Addr().String())
		defer m.Close()
	}
	current := &currentConfig{cfg: cfg}
	reload := reloader(h, path, current, logger)
	go func() {
		for range hup {
			logger.Info("SIGHUP received: reloading the configuration", "config", path)
			reload() // it logs what happened
		}
	}()
	// The control socket before the workers: a second host of the same
	// configuration (whose socket is taken by a live host) would run a
	// second set of workers nothing can control, so it does not start.
	// Any other trouble with the socket, the host runs without it (its
	// records matter more), saying so.
	copts := control.Options{Logger: logger.Named("control"), Reload: reload}
	if cfg.Control != nil {
		copts.Group = cfg.Control.GID
	}
	ctl, err := control.Listen(socket, h, copts)
	switch {
	case errors.Is(err, control.ErrInUse):
		fmt.Fprintf(stderr, "logtk-host: %v: a host of this configuration runs already (logtk-host status -config %s)\n", err, path)
		h.Stop(context.Background())
		return 1
	case err != nil:
		logger.Error("no control socket: status, restart, stop, start, scale, reload and logs -f will not reach this host", "error", err)
	default:
		logger.Info("control socket listening", "path", ctl.Addr())
		defer ctl.Close()
	}
	if err := h.Start(); err != nil {
		fmt.Fprintf(stderr, "logtk-host: %v\n", err)
		return 1
	}
	// Under systemd (Type=notify), the unit is started once the workers
	// are and the control socket listens.
	if _, err := sdnotify.Notify(sdnotify.Ready); err != nil {
		logger.Warn("could not tell systemd the host is ready", "error", err)
	}
	select {
	case <-h.Done():
		return summary(current.get(), h, stderr)
	case s := <-sigs:
		logger.Info("stopping: signal received; a second signal kills the workers at once", "signal", s)
		sdnotify.Notify(sdnotify.Stopping)
	}
	// The grace period is the workers' own stop_timeout; a second signal
	// cuts it short.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-h.Done():
		}
	}()
	var grace time.Duration
	for _, w := range cfg.Workers {
		grace = max(grace, w.StopTimeout+w.DrainTimeout)
	}
	ctx, cancel2 := context.WithTimeout(ctx, grace+5*time.Second)
	defer cancel2()
	if err := h.Stop(ctx); err != nil {
		logger.Error("stopped with an error", "error", err)
		return 1
	}
	return summary(current.get(), h, stderr)
}

// newLogger makes the command's own log: its times in UTC with
// microseconds, as the text formatter writes the records beside it.
func newLogger(name string, w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Output: w, Level: hclog.Info,
		TimeFormat: "2006-01-02T15:04:05.000000Z07:00", TimeFn: func() time.Time { return time.Now().UTC() }})
}

// ignoreHangup keeps SIGHUP (what logrotate's postrotate and operators
// send to reload) from ending the process, as its default action would,
// killing the workers with it: there is no reload yet, so it is logged
// and otherwise ignored.
func ignoreHangup(logger hclog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			logger.Warn("SIGHUP received: a log server does not reload its configuration; going on as before (restart it to apply a change)")
		}
	}()
}

// reloader returns what reload and SIGHUP do: read the configuration
// again and, if it is valid as a whole, apply it (host.Reload); if not,
// change nothing. It returns what happened, and logs it.
func reloader(h *host.Host, path string, current *currentConfig, logger hclog.Logger) func() (string, error) {
	return func() (string, error) {
		cfg, err := config.Load(path)
		if err != nil {
			msg := strings.TrimSuffix(config.FormatDiagnostics(err), "\n")
			logger.Error("reload refused: the configuration is not valid; nothing changed", "config", path, "diagnostics", msg)
			return "", fmt.Errorf("the configuration is not valid; nothing changed:\n%s", msg)
		}
		res, err := h.Reload(cfg)
		summary := fmt.Sprintf("workers added %v, removed %v, changed %v, scaled %v, unchanged %v; stages replaced: %v",
			orNone(res.Added), orNone(res.Removed), orNone(res.Changed), orNone(res.Scaled), orNone(res.Unchanged), res.StagesReplaced)
		// What a reload does not apply: the control socket and the
		// metrics listener stay as the host started them.
		old := current.swap(cfg)
		if !reflect.DeepEqual(old.Control, cfg.Control) {
			summary += "; the control block changed: it applies at the next start (the host still listens where it started)"
		}
		if !reflect.DeepEqual(old.Metrics, cfg.Metrics) {
			summary += "; the metrics block changed: it applies at the next start"
		}
		if err != nil {
			logger.Error("reload failed", "config", path, "applied", summary, "error", err)
			return summary, err
		}
		logger.Info("configuration reloaded", "config", path, "workers_added", res.Added, "workers_removed", res.Removed,
			"workers_changed", res.Changed, "stages_replaced", res.StagesReplaced)
		return summary, nil
	}
}

// currentConfig is the configuration the host runs, replaced by each
// reload (the closing summary names its transports).
type currentConfig struct {
	mu  sync.Mutex
	cfg *config.Config
}

// swap makes cfg current and returns the one it replaces; the control
// and metrics blocks stay those the host started with.
func (c *currentConfig) swap(cfg *config.Config) *config.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.cfg
	next := *cfg
	next.Control, next.Metrics = old.Control, old.Metrics
	c.cfg = &next
	return old
}

func (c *currentConfig) get() *config.Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// run's exit statuses beyond 0, 1 (configuration or start-up error) and 2
// (usage): records were not delivered, or a worker was given up after a
// crash loop (when both, exitUndelivered).
const (
	exitUndelivered = 3
	exitGaveUp      = 4
)

// summary tells the user where the records went, and returns run's exit
// status: exitUndelivered if any record was not delivered.
func summary(cfg *config.Config, h *host.Host, w io.Writer) int {
	status := 0
	if ids := h.GaveUp(); len(ids) > 0 {
		status = exitGaveUp
		fmt.Fprintf(w, "logtk-host: GAVE UP on %d worker instances after a crash loop: %v (exit status %d)\n", len(ids), ids, exitGaveUp)
	}
	if u := h.Undelivered(); u.Any() {
		status = exitUndelivered
		fmt.Fprintf(w, "logtk-host: NOT DELIVERED: %d records dead-lettered, %d records only in this log, %d batches dropped from a full spool, %d spooled batches unreadable (set aside), %d workers' rings abandoned with what was in them (exit status %d)\n",
			u.DeadLettered, u.Logged, u.DroppedBatches, u.SetAsideBatches, u.AbandonedRings, exitUndelivered)
	}
	if len(cfg.Transports) == 0 {
		fmt.Fprintln(w, "logtk-host: all workers have ended; records were written to stdout")
		return status
	}
	fmt.Fprintln(w, "logtk-host: all workers have ended; records were written by:")
	for _, t := range cfg.Transports {
		var c struct {
			Path        string `json:"path"`
			Endpoint    string `json:"endpoint"`
			Application string `json:"application"`
		}
		json.Unmarshal(t.Config, &c)
		where := filepath.Base(t.Plugin)
		if c.Path != "" {
			where += " -> " + c.Path
		}
		if ep, ok := t.Allow.Endpoints[c.Endpoint]; ok {
			if c.Application != "" {
				where += fmt.Sprintf(" -> log server %s, application %q", ep.Address, c.Application)
			} else {
				where += fmt.Sprintf(" -> endpoint %q (%s)", c.Endpoint, ep.Address)
			}
		}
		fmt.Fprintf(w, "  transport %-10s format %-10s %s\n", t.Name, t.Format, where)
	}
	if cfg.DeadLetterDir != "" {
		if batches, _ := filepath.Glob(filepath.Join(cfg.DeadLetterDir, "*.batch")); len(batches) > 0 {
			fmt.Fprintf(w, "  and %d dead-lettered batches in %s (each beside its .reason file)\n", len(batches), cfg.DeadLetterDir)
		}
	}
	return status
}

// printConfigStages lists the format and transport blocks with the
// module each runs: builtin:<name> for one compiled into logtk-host, or
// the file's path (a plugin_dir's override shows so).
func printConfigStages(w io.Writer, cfg *config.Config) {
	if len(cfg.Formats)+len(cfg.Transports) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tFORMAT\tPLUGIN")
	for _, f := range cfg.Formats {
		fmt.Fprintf(tw, "format %s\t-\t%s\n", f.Name, f.Plugin)
	}
	for _, t := range cfg.Transports {
		fmt.Fprintf(tw, "transport %s\t%s\t%s\n", t.Name, t.Format, t.Plugin)
	}
	tw.Flush()
}

func serve(cfg *config.Config, stderr io.Writer) int {
	logger := newLogger("logtk-server", stderr)
	if cfg.Server == nil {
		fmt.Fprintln(stderr, "logtk-host serve: the configuration has no server block")
		return 1
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ignoreHangup(logger)
	sopts := logserver.Options{Logger: logger}
	var reg *prometheus.Registry
	if cfg.Metrics != nil {
		reg = metrics.NewRegistry()
		sopts.Metrics = reg
	}
	srv, err := logserver.New(cfg, sopts)
	if err != nil {
		fmt.Fprintf(stderr, "logtk-host serve: %v\n", err)
		return 1
	}
	if reg != nil {
		m, err := metrics.Listen(cfg.Metrics.Listen, reg, srv.Ready)
		if err != nil {
			srv.Shutdown(context.Background())
			fmt.Fprintf(stderr, "logtk-host serve: metrics: %v\n", err)
			return 1
		}
		logger.Info("metrics listening", "address", m.Addr().String())
		defer m.Close()
	}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	go func() {
		if srv.Addr() != nil { // listening
			if _, err := sdnotify.Notify(sdnotify.Ready); err != nil {
				logger.Warn("could not tell systemd the server is ready", "error", err)
			}
		}
	}()
	var s os.Signal
	select {
	case s = <-sigs:
	case err := <-served:
		// It could not listen (an address taken): nothing was served.
		fmt.Fprintf(stderr, "logtk-host serve: %v\n", err)
		srv.Shutdown(context.Background())
		return 1
	}
	logger.Info("stopping: signal received", "signal", s)
	sdnotify.Notify(sdnotify.Stopping)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go func() {
		<-sigs
		cancel()
	}()
	err = srv.Shutdown(ctx)
	b, r, d := srv.Stats()
	logger.Info("log server stopped", "batches", b, "records", r, "duplicates_dropped", d,
		"syslog_messages", srv.SyslogStats().Messages.Load(), "otlp_records", srv.OTLPStats().Records.Load(), "kafka_records", srv.KafkaStats().Stored.Load(), "dir", cfg.Server.Dir)
	if err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("stopped with an error", "error", err)
		return 1
	}
	return 0
}
