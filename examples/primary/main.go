// Command primary is the seed's main.js in Go: a program that is itself the
// primary. It embeds the host as a library, runs two copies of itself as
// workers, exchanges custom messages with them (the seed's
// c.on("message") and worker.send()), and stops on SIGINT/SIGTERM or when
// the workers are done.
//
// The same binary is both sides: started by the host (LOGTK_WORKER is set)
// it acts as the worker, the seed's worker.js.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/logtk/logtk/config"
	"github.com/logtk/logtk/host"
	"github.com/logtk/logtk/sdk"
)

func main() {
	if _, isWorker := os.LookupEnv("LOGTK_WORKER"); isWorker {
		worker()
		return
	}
	os.Exit(primary())
}

func primary() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cfg := &config.Config{Workers: []config.WorkerConfig{{
		Name:    "worker",
		Command: self,
		Count:   2,
		Restart: config.RestartNever,
	}}}
	var h *host.Host
	h, err = host.New(cfg, host.Options{
		// Only custom messages arrive here; log records go to the output.
		OnMessage: func(from host.WorkerID, payload []byte) {
			fmt.Printf("Received IPC data from %s: %s\n", from, payload)
			if err := h.Send(from, []byte("ack "+string(payload))); err != nil {
				fmt.Fprintln(os.Stderr, "reply failed:", err)
			}
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	if err := h.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Do whatever else you want in this process.
	select {
	case <-h.Done():
	case <-sigs:
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := h.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func worker() {
	log := sdk.New(sdk.Options{Name: "worker"})
	replied := make(chan string, 1)
	sdk.OnMessage(func(p []byte) { replied <- string(p) })

	info, _ := sdk.Worker()
	log.Info("Hello, world!", sdk.Int("index", info.Index))
	if err := sdk.Send(fmt.Appendf(nil, "custom message from worker %d", info.Index)); err != nil {
		log.Error("send failed", sdk.Err(err))
		return
	}
	select {
	case r := <-replied:
		log.Info("the primary replied", sdk.String("reply", r))
	case <-time.After(10 * time.Second):
		log.Error("no reply from the primary")
	}
}
