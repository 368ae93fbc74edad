package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/host"
	"github.com/logtk/logtk/internal/control"
)

// controlSocket is where a host run with cfg listens.
func controlSocket(cfg *config.Config, configFile string) string {
	if cfg.Control != nil && cfg.Control.Socket != "" {
		return cfg.Control.Socket
	}
	return config.DefaultControlSocket(configFile)
}

// client runs a verb against a running host.
func client(verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "plugins.hcl", "the running host's configuration file (to find its control socket)")
	socket := fs.String("socket", "", "the control socket (default: the configuration's)")
	output := fs.String("o", "text", "output: text or json")
	operands := map[string]string{"status": "", "restart": "NAME[#i]", "stop": "NAME[#i]", "start": "NAME[#i]", "scale": "NAME N", "reload": ""}[verb]
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: logtk-host %s [-config plugins.hcl | -socket PATH] [-o text|json] %s\n\nflags:\n", verb, operands)
		fs.PrintDefaults()
	}
	rest, code, ok := parseFlags(fs, args, stdout)
	if !ok {
		return code
	}
	want := len(strings.Fields(operands))
	if len(rest) != want {
		fmt.Fprintf(stderr, "logtk-host %s: want %s, got %q\n", verb, orNothing(operands), rest)
		return 2
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "logtk-host %s: -o %q: want text or json\n", verb, *output)
		return 2
	}
	req := control.Request{Verb: verb}
	switch verb {
	case "restart", "stop", "start":
		req.Target = rest[0]
	case "scale":
		n, err := strconv.Atoi(rest[1])
		if err != nil || n < 0 {
			fmt.Fprintf(stderr, "logtk-host scale: %q is not a count of instances\n", rest[1])
			return 2
		}
		req.Worker, req.Count = rest[0], &n
	}
	sock := *socket
	if sock == "" {
		var err error
		if sock, err = config.ControlSocket(*path); err != nil {
			fmt.Fprintf(stderr, "logtk-host %s: %s", verb, config.FormatDiagnostics(err))
			if !strings.HasSuffix(config.FormatDiagnostics(err), "\n") {
				fmt.Fprintln(stderr)
			}
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	resp, err := control.Do(ctx, sock, req)
	if *output == "json" {
		b, _ := json.MarshalIndent(resp, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		if resp.Message != "" {
			fmt.Fprintln(stdout, resp.Message)
		}
		if resp.Instances != nil {
			printStatus(stdout, resp.Instances)
		}
		if len(resp.Stages) > 0 {
			fmt.Fprintln(stdout)
			printStages(stdout, resp.Stages)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "logtk-host %s: %v\n", verb, err)
		return 1
	}
	return 0
}

func orNothing(s string) string {
	if s == "" {
		return "no arguments"
	}
	return s
}

// helpAsked reports whether args ask for a command's help.
func helpAsked(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

// printStatus renders instances as a table, as pm2 ls does.
func printStatus(w io.Writer, instances []host.InstanceStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tSTATE\tPID\tUPTIME\tINCARNATION\tRESTARTS\tRECORDS\tREC/S\tLAST EXIT")
	for _, st := range instances {
		pid, uptime := "-", "-"
		if st.PID != 0 {
			pid = strconv.Itoa(st.PID)
			uptime = time.Since(st.Started).Round(time.Second).String()
		}
		last := st.LastExit
		if i := strings.IndexByte(last, '\n'); i >= 0 {
			last = last[:i]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%.0f\t%s\n", st.ID, st.State, pid, uptime, st.Incarnation, st.Restarts, st.Records, st.RecordsPerSecond, last)
	}
	tw.Flush()
}

// printStages renders the stages as a table.
func printStages(w io.Writer, stages []host.StageStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tPLUGIN\tINSTANCES\tQUEUED\tDELIVERED\tSPOOL\tDEAD-LETTERED")
	for _, s := range stages {
		spool := "-"
		if s.SpoolBatches > 0 || s.SpoolBytes > 0 {
			spool = fmt.Sprintf("%d batches, %d bytes", s.SpoolBatches, s.SpoolBytes)
		}
		delivered := "-"
		if strings.HasPrefix(s.Name, "transport ") {
			delivered = strconv.FormatInt(s.Delivered, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%d\n", s.Name, filepath.Base(s.Plugin), s.Instances, s.Queued, delivered, spool, s.DeadLettered)
	}
	tw.Flush()
}

// parseFlags parses a command's flags, which may come before or after its
// operands, and returns the operands. With -h it prints the help on
// stdout; when there is nothing more to do, ok is false and code is the
// exit status (0 after -h, 2 for bad usage).
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) (operands []string, code int, ok bool) {
	if helpAsked(args) {
		fs.SetOutput(stdout)
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		if fs.NArg() == 0 {
			return operands, 0, true
		}
		operands = append(operands, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
