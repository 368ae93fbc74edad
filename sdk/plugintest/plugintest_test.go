package plugintest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/logtk/logtk/sdk/plugintest"
)

// The kit passes on every reference plugin.
func TestReferencePlugins(t *testing.T) {
	for _, name := range []string{"text", "json", "protobuf"} {
		t.Run(name, func(t *testing.T) {
			plugintest.TestFormatter(t, plugintest.Build(t, "../../plugins/"+name+"/plugin"), plugintest.Options{})
		})
	}
	t.Run("console", func(t *testing.T) {
		plugintest.TestTransport(t, plugintest.Build(t, "../../plugins/console/plugin"), plugintest.Options{})
	})
	t.Run("file", func(t *testing.T) {
		dir := t.TempDir()
		plugintest.TestTransport(t, plugintest.Build(t, "../../plugins/file/plugin"),
			plugintest.Options{Config: `{"path":"` + dir + `/out.log","max_bytes":2000,"max_files":2}`, Dirs: []string{dir}})
	})
}

// The kit fails on deliberately broken plugins, saying why.
func TestBrokenPluginsFail(t *testing.T) {
	broken := plugintest.Build(t, "testdata/broken")
	raw := plugintest.Build(t, "../../internal/wasm/testdata/raw")
	tests := []struct {
		name, wasm, config, want string
	}{
		{"trap", broken, `{"mode":"trap"}`, "trapped"},
		{"infinite loop", broken, `{"mode":"loop"}`, "ran past its time budget"},
		{"memory leak", broken, `{"mode":"leak"}`, "memory"}, // "memory grew", or out of memory first
		{"out-of-bounds result", raw, `{"lie":"result"}`, "outside its"},
		{"wrong entry count", raw, `{"lie":"count"}`, "returned garbage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := plugintest.CheckFormatter(tc.wasm, plugintest.Options{Config: tc.config, CallTimeout: 2 * time.Second})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckFormatter = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
