package plugintest_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	irecord "github.com/logtk/logtk/internal/record"

	"github.com/logtk/logtk/record"
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

// failedCases returns the names of the cases a Check function's error
// reports, from the "case: " that begins each violation.
func failedCases(err error) map[string]bool {
	failed := map[string]bool{}
	if err == nil {
		return failed
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		name, _, _ := strings.Cut(e.Error(), ": ")
		failed[name] = true
	}
	return failed
}

// The kit fails on deliberately broken plugins, naming the case that
// catches each and saying why; the plugins load and configure, and those
// cases pass.
func TestBrokenPluginsFail(t *testing.T) {
	broken := plugintest.Build(t, "testdata/broken")
	raw := plugintest.Build(t, "../../internal/wasm/testdata/raw")
	tests := []struct {
		name, wasm, config string
		failing            string // the case that must fail
		want               string // what its failure must say
	}{
		{"trap", broken, `{"mode":"trap"}`, "samples", "trapped"},
		{"infinite loop", broken, `{"mode":"loop"}`, "samples", "ran past its time budget"},
		{"memory leak", broken, `{"mode":"leak"}`, "memory", "memory"}, // "memory grew", or out of memory first
		{"out-of-bounds result", raw, `{"lie":"result"}`, "samples", "outside its"},
		{"wrong entry count", raw, `{"lie":"count"}`, "samples", "returned garbage"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := plugintest.CheckFormatter(tc.wasm, plugintest.Options{Config: tc.config, CallTimeout: 2 * time.Second})
			failed := failedCases(err)
			if !failed[tc.failing] {
				t.Fatalf("CheckFormatter = %v, want case %q to fail", err, tc.failing)
			}
			for _, ok := range []string{"info", "malformed-config", "configure"} {
				if failed[ok] {
					t.Errorf("case %q failed, want it to pass: %v", ok, err)
				}
			}
			var own error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					if strings.HasPrefix(e.Error(), tc.failing+": ") {
						own = errors.Join(own, e)
					}
				}
			}
			if own == nil || !strings.Contains(own.Error(), tc.want) {
				t.Fatalf("case %q: %v, want an error containing %q", tc.failing, own, tc.want)
			}
		})
	}
}

// TestForgetfulMarksFail: a transport that says it keeps marks but
// forgets them with its instance fails the kit's marks case, and only it.
func TestForgetfulMarksFail(t *testing.T) {
	err := plugintest.CheckTransport(plugintest.Build(t, "testdata/forgetful"), plugintest.Options{})
	failed := failedCases(err)
	if !failed["marks"] || len(failed) != 1 || !strings.Contains(err.Error(), "the next instance's logtk_marks names seq 0") {
		t.Fatalf("CheckTransport = %v, want the marks case, alone, to fail", err)
	}
}

// envChildWasm makes TestFormatterOnBroken check the plugin it names: it is
// set by TestFormatterNamesFailingCases for the test binary it runs.
const envChildWasm = "PLUGINTEST_CHILD_WASM"

// TestFormatterOnBroken is TestFormatter on a broken plugin, failing as it
// must; it runs only as TestFormatterNamesFailingCases's child.
func TestFormatterOnBroken(t *testing.T) {
	wasm := os.Getenv(envChildWasm)
	if wasm == "" {
		t.Skip("run by TestFormatterNamesFailingCases")
	}
	plugintest.TestFormatter(t, wasm, plugintest.Options{Config: `{"mode":"trap"}`, CallTimeout: 2 * time.Second})
}

// What a plugin author sees: TestFormatter reports a broken plugin's
// failure under the name of the case it breaks, and the other cases pass.
func TestFormatterNamesFailingCases(t *testing.T) {
	broken := plugintest.Build(t, "testdata/broken")
	cmd := exec.Command(os.Args[0], "-test.run=^TestFormatterOnBroken$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), envChildWasm+"="+broken)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("the child test passed, or did not run: %v\n%s", err, out)
	}
	for _, want := range []string{
		"--- FAIL: TestFormatterOnBroken/samples ",
		"--- PASS: TestFormatterOnBroken/info ",
		"--- PASS: TestFormatterOnBroken/configure ",
		"--- PASS: TestFormatterOnBroken/empty-batch ",
		"--- PASS: TestFormatterOnBroken/large-record ",
		"trapped",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
}

// TestFormatReturnsOutput: Format gives a plugin's output per record, in
// order (the text formatter: one line each, the message in it), and the
// plugin's error for a configuration it refuses.
func TestFormatReturnsOutput(t *testing.T) {
	text := plugintest.Build(t, "../../plugins/text/plugin")
	recs := plugintest.SampleRecords()
	out, err := plugintest.Format(text, plugintest.Options{}, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(recs) {
		t.Fatalf("%d outputs for %d records", len(out), len(recs))
	}
	for i, o := range out {
		var v record.Record
		v.Parse(recs[i])
		// The message's first line, as it is or (holding what a terminal
		// would act on) escaped as Go quotes it.
		first := bytes.SplitN(v.Message, []byte("\n"), 2)[0]
		quoted := strconv.Quote(string(first))
		if !bytes.HasSuffix(o, []byte("\n")) || !bytes.Contains(o, first) && !bytes.Contains(o, []byte(quoted[1:len(quoted)-1])) {
			t.Errorf("record %d: %q does not hold its message %q", i, o, v.Message)
		}
	}
	if _, err := plugintest.Format(text, plugintest.Options{Config: `{"theme":"neon"}`}, recs); err == nil {
		t.Error("a configuration the plugin refuses gave no error")
	}
}

// TestSamplesAreValid: every sample record is one the host accepts
// (the edge sample is partly written by hand).
func TestSamplesAreValid(t *testing.T) {
	for i, r := range plugintest.SampleRecords() {
		if err := irecord.Validate(r); err != nil {
			t.Errorf("sample %d: %v", i, err)
		}
	}
}
