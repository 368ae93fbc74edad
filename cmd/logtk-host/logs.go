package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/internal/control"
	"github.com/logtk/logtk/internal/logread"
	"github.com/logtk/logtk/record"
	"github.com/logtk/logtk/record/textfmt"
)

// logs prints stored records: logtk-host logs [flags] FILE|DIR...
func logs(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	follow := fs.Bool("f", false, "follow: print records as they are written (past rotations too), until interrupted")
	worker := fs.String("worker", "", "only the records of worker NAME, or of one instance NAME#i")
	level := fs.String("level", "", "only records at this level or above: trace, debug, info, notice, warn, error, fatal")
	since := fs.Duration("since", 0, "only records of the last duration (e.g. 10m)")
	grep := fs.String("grep", "", "only records whose text line matches this regular expression (RE2)")
	output := fs.String("o", "text", "output: text (as the console prints) or json (one object a line)")
	path := fs.String("config", "plugins.hcl", "with -f and no files: the running host's configuration (to find its control socket)")
	socket := fs.String("socket", "", "with -f and no files: the running host's control socket")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: logtk-host logs [flags] FILE|DIR...
       logtk-host logs -f [flags]      (the records of the running host)

Prints the records of stored files: a log server application's directory
or records.pb, or a file transport's length-prefixed protobuf file. Files
rotated from the one named are read first, oldest first. A last record
cut short is reported on stderr, not an error. With -f and no file, it
attaches to the running host (found by -config or -socket) and prints the
records it routes from now on.

flags:
`)
		fs.PrintDefaults()
	}
	paths, code, ok := parseFlags(fs, args, stdout)
	if !ok {
		return code
	}
	if len(paths) == 0 && !*follow {
		fmt.Fprintln(stderr, "logtk-host logs: name the files or directories to read (a log server's <dir>/<application>, a file transport's file), or -f to follow the running host")
		return 2
	}
	var filter logread.Filter
	if *worker != "" {
		if _, _, _, err := logread.ParseWorker(*worker); err != nil {
			fmt.Fprintf(stderr, "logtk-host logs: -worker %v\n", err)
			return 2
		}
		filter.Worker = *worker
	}
	if *level != "" {
		l, ok := logread.Levels[strings.ToLower(*level)]
		if !ok {
			fmt.Fprintf(stderr, "logtk-host logs: -level %q: want trace, debug, info, notice, warn, error or fatal\n", *level)
			return 2
		}
		filter.MinLevel = l
	}
	if *since < 0 {
		fmt.Fprintf(stderr, "logtk-host logs: -since %s: want a positive duration\n", *since)
		return 2
	} else if *since > 0 {
		filter.Since = time.Now().Add(-*since)
	}
	if *grep != "" {
		re, err := regexp.Compile(*grep)
		if err != nil {
			fmt.Fprintf(stderr, "logtk-host logs: -grep: %v\n", err)
			return 2
		}
		filter.Grep = re
	}
	if *output != "text" && *output != "json" {
		fmt.Fprintf(stderr, "logtk-host logs: -o %q: want text or json\n", *output)
		return 2
	}
	if len(paths) == 0 {
		if *since > 0 {
			fmt.Fprintln(stderr, "logtk-host logs: -since reads stored files; a running host's records are followed from now on")
			return 2
		}
		return followHost(*path, *socket, control.Request{Verb: "logs", Worker: *worker, Level: *level, Grep: *grep, Output: *output}, stdout, stderr)
	}
	if *follow && len(paths) > 1 {
		fmt.Fprintln(stderr, "logtk-host logs: -f follows one file or directory")
		return 2
	}
	var files []string
	for _, p := range paths {
		fl, err := logread.Files(p)
		if err != nil {
			fmt.Fprintf(stderr, "logtk-host logs: %v\n", err)
			return 1
		}
		files = append(files, fl...)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	var line, text []byte
	var rec record.Record
	printer := &logread.Printer{JSON: *output == "json"}
	tc := &textfmt.TimeCache{}
	err := logread.Read(ctx, files, logread.Options{
		Follow: *follow,
		Warn: func(s string) {
			w.Flush()
			fmt.Fprintln(stderr, "logtk-host logs:", s)
		},
	}, func(b []byte) error {
		rec.Parse(b)
		text = text[:0]
		rendered := false
		render := func() []byte {
			if !rendered {
				text = textfmt.None.AppendWith(text[:0], &rec, tc)
				rendered = true
			}
			return text
		}
		if !filter.Match(&rec, render) {
			return nil
		}
		if *output == "json" {
			var err error
			if line, err = printer.Append(line[:0], &rec); err != nil {
				return err
			}
			w.Write(line)
		} else {
			w.Write(render())
		}
		if *follow {
			return w.Flush() // a follower sees each record as it comes
		}
		return nil
	})
	w.Flush()
	if err != nil {
		fmt.Fprintf(stderr, "logtk-host logs: %v\n", err)
		return 1
	}
	return 0
}

// followHost prints the records of the running host until interrupted.
func followHost(configFile, socket string, req control.Request, stdout, stderr io.Writer) int {
	if socket == "" {
		var err error
		if socket, err = config.ControlSocket(configFile); err != nil {
			fmt.Fprintf(stderr, "logtk-host logs: %s\n", strings.TrimSuffix(config.FormatDiagnostics(err), "\n"))
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := control.Stream(ctx, socket, req, stdout); err != nil {
		fmt.Fprintf(stderr, "logtk-host logs: %v\n", err)
		return 1
	}
	return 0
}
