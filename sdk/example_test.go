package sdk_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/logtk/logtk/record/textfmt"
	"github.com/logtk/logtk/sdk"
	"github.com/logtk/logtk/sdk/plugin"
)

// sent keeps the records a Logger sends to its Options.Writer. Each Write
// is one whole frame in the IPC framing of docs/ipc.md: a 5-byte header,
// then one encoded record.
type sent [][]byte

func (s *sent) Write(frame []byte) (int, error) {
	*s = append(*s, bytes.Clone(frame[5:]))
	return len(frame), nil
}

// print shows each record as its level, logger name, message and
// top-level attributes, read back with the plugin SDK's Record.
func (s sent) print() {
	for _, b := range s {
		var r plugin.Record
		if !r.Parse(b) {
			fmt.Println("malformed record")
			continue
		}
		fmt.Printf("%s %s: %s", textfmt.LevelName(r.Level), r.Logger, r.Message)
		var a plugin.Attr
		for it := r.Attrs(); it.Next(&a); {
			fmt.Printf(" %s=%s", a.Key, textfmt.AppendValue(nil, &a))
		}
		fmt.Println()
	}
}

// Under logtk-host a worker needs only sdk.New(sdk.Options{Name: "shop"}):
// its records go to the host. Options.Writer takes them instead, which is
// how a test sees exactly what its code logs.
func ExampleOptions_writer() {
	var records sent
	log := sdk.New(sdk.Options{Name: "shop", Level: sdk.LevelInfo, Writer: &records})

	log.Info("order placed", sdk.Int("order", 1001), sdk.String("country", "NZ"))
	log.Debug("cart recalculated") // below the Logger's level: not sent
	log.Named("payments").With(sdk.Int("order", 1002)).Warn("card declined", sdk.Bool("retry", true))

	records.print()
	// Output:
	// INFO  shop: order placed order=1001 country=NZ
	// WARN  shop.payments: card declined order=1002 retry=true
}

// A Logger is also a log/slog handler, for code that logs through slog.
func ExampleNewHandler() {
	var records sent
	log := slog.New(sdk.NewHandler(sdk.Options{Name: "shop", Level: sdk.LevelInfo, Writer: &records}))

	log.Info("order placed", "order", 1001, "country", "NZ")
	log.Error("payment failed", slog.Duration("after", 1500*time.Millisecond))

	records.print()
	// Output:
	// INFO  shop: order placed order=1001 country=NZ
	// ERROR shop: payment failed after=1.5s
}

// Named appends to a Logger's name; WithName replaces it.
func ExampleLogger_Named() {
	log := sdk.New(sdk.Options{Name: "shop", Writer: io.Discard})
	db := log.Named("db")

	fmt.Println(db.Name())
	fmt.Println(db.Named("pool").Name())
	fmt.Println(db.WithName("cache").Name())
	// Output:
	// shop.db
	// shop.db.pool
	// cache
}
