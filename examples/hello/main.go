// Command hello is the seed's worker.js in Go: it logs "Hello, world!" with
// a few attributes through the logtk SDK, then panics. Run under
// logtk-host (make run), the host captures the panic with its goroutine
// trace, logs the crash and restarts the worker; the second incarnation
// says so and exits cleanly.
package main

import (
	"log/slog"
	"os"
	"time"

	"github.com/logtk/logtk/sdk"
)

func main() {
	log := sdk.New(sdk.Options{Name: "hello"})
	info, underHost := sdk.Worker()

	log.Info("Hello, world!",
		sdk.String("user", "unprivileged-worker"),
		sdk.Int("answer", 42),
		sdk.Duration("uptime", 3*time.Millisecond),
		sdk.Group("request", sdk.String("method", "GET"), sdk.String("path", "/")),
	)

	// Code already written against log/slog needs one line to switch.
	slog.SetDefault(slog.New(sdk.NewHandler(sdk.Options{Name: "hello.slog"})))
	slog.Info("the same pipeline, through log/slog", "incarnation", info.Incarnation)

	if underHost && info.Incarnation > 0 {
		log.Notice("restarted after the crash; finishing cleanly", sdk.Int("incarnation", info.Incarnation))
		os.Exit(0)
	}
	log.Warn("about to fail", sdk.Bool("on_purpose", true))
	panic("This is an uncaught error that will be discovered by the host, and logged.")
}
