package plugintest

import (
	"context"
	"fmt"

	"github.com/logtk/logtk/internal/entries"
)

// Format runs the format plugin at wasmPath, configured with
// opts.Config, over records (encoded logtk.v1.Records, such as
// SampleRecords) in one batch, as the host does, and returns what it
// made of each record, in order: for checking a plugin's output, which
// the conformance kit checks only for its shape. An empty entry is a
// record the plugin filtered out.
func Format(wasmPath string, opts Options, records [][]byte) ([][]byte, error) {
	f := &fixture{ctx: context.Background(), path: wasmPath, kind: "format", opts: opts}
	m, err := f.load()
	if err != nil {
		return nil, err
	}
	defer m.Close(f.ctx)
	inst, err := m.NewInstance(f.ctx)
	if err != nil {
		return nil, err
	}
	defer inst.Close(f.ctx)
	cfg := opts.Config
	if cfg == "" {
		cfg = "{}"
	}
	if err := inst.Configure(f.ctx, []byte(cfg)); err != nil {
		return nil, fmt.Errorf("Configure(%s): %w", cfg, err)
	}
	out, err := inst.Format(f.ctx, batchOf(records), len(records))
	if err != nil {
		return nil, err
	}
	res := make([][]byte, 0, len(records))
	entries.Each(out, func(e []byte) { res = append(res, append([]byte(nil), e...)) })
	return res, nil
}
