package config

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"golang.org/x/sys/unix"

	"github.com/logtk/logtk/internal/record"
)

// Config is what a host runs: plain data, which Load and Parse build from
// plugins.hcl and a program embedding the host may build directly. It
// holds nothing compiled: whoever runs it (host.New, logserver.New)
// compiles the plugins it names and owns them.
type Config struct {
	Workers []WorkerConfig
	// Formats and Transports are the Wasm stages every record goes
	// through: each transport writes what its format produced. With no
	// transports the host writes text to stdout natively.
	Formats    []FormatConfig
	Transports []TransportConfig
	// PluginDir is searched first for built-in plugins (text.wasm, ...).
	PluginDir string
	// DeadLetterDir receives batches a plugin failed on repeatedly.
	// Default: logtk-dead-letter beside the configuration file (or in the
	// working directory for a Config built in code).
	DeadLetterDir string

	// Server, when set, makes logtk-host serve run a log server.
	Server *ServerConfig
}

// RestartPolicy says when a worker instance that exited is started again.
type RestartPolicy string

// Restart policies.
const (
	RestartNever     RestartPolicy = "never"      // never restart
	RestartOnFailure RestartPolicy = "on-failure" // restart unless it exited with status 0
	RestartAlways    RestartPolicy = "always"     // restart whatever the exit
)

// WorkerConfig describes one worker block: a command run Count times.
// Zero-valued fields take the defaults documented on each.
type WorkerConfig struct {
	// Name identifies the worker in records and diagnostics. Required.
	Name string
	// Command is the program to run: a path, or a name looked up in PATH.
	// Required.
	Command string
	// Args are the program's arguments (not including the program name).
	Args []string
	// Count is the number of instances. Default 1.
	Count int
	// Dir is the working directory. Default: the host's.
	Dir string
	// Env is added to the environment. Unless NoInheritEnv is set the
	// worker also gets the host's environment.
	Env          map[string]string
	NoInheritEnv bool
	// User and Group name the account the worker runs as (the host must be
	// root to switch). Group defaults to User's primary group. UID and GID
	// are resolved from them by Load; set them directly when building
	// a Config in code.
	User, Group string
	UID, GID    *uint32
	Groups      []uint32 // supplementary groups; default User's
	// Restart is the restart policy. Default RestartOnFailure.
	Restart RestartPolicy
	// BackoffInitial is the delay before the first restart; it doubles on
	// each restart up to BackoffMax. An incarnation that ran for at least
	// BackoffReset counts as stable: the next delay is BackoffInitial again.
	// Defaults 100ms, 30s and 30s.
	BackoffInitial, BackoffMax, BackoffReset time.Duration
	// MaxRestarts within RestartWindow is the crash-loop limit: the restart
	// that would exceed it is not made, and a fatal record says so.
	// Defaults 10 and 60s.
	MaxRestarts   int
	RestartWindow time.Duration
	// StopSignal asks the worker to stop; after StopTimeout it is killed.
	// Defaults SIGTERM and 10s.
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	// DrainTimeout bounds how long the host waits, after an instance
	// exited, for the end of its IPC channel and output pipes (which a
	// child of the worker may still hold open). Default 5s.
	DrainTimeout time.Duration
	// MaxLineBytes is the longest stdout/stderr line kept as one record;
	// longer lines are split into parts. Default 1 MiB.
	MaxLineBytes int
	// MaxFrameBytes is the largest IPC frame payload accepted. Default 1 MiB.
	MaxFrameBytes int
	// RingBytes is the size of the shared-memory ring each incarnation
	// gets for its records (a power of two, at least 4096), through which
	// an SDK logs without a system call per record. Default 1 MiB; a
	// negative value gives workers only the socket.
	RingBytes int
	// StderrLevel is the level of a stderr line that names none: "trace",
	// "debug", "info", "notice", "warn" or "error". Default "error"; set
	// "info" for programs that log everything to stderr (Python's logging
	// and http.server do). A text line that starts with a level prefix
	// ("INFO:root:...", "[WARN] ...", "ERROR ...", "level=debug ...",
	// klog's "W1206 ..."; see capture.LevelPrefix) has that level instead,
	// on stdout as on stderr, and the line is kept whole as the message; a
	// JSON line's level key wins over both. stdout lines that name no
	// level are info.
	//
	// A crash report on stderr (a Go panic or fatal error and its
	// goroutine trace, a Python traceback; see capture.Splitter) is one
	// record at error level, whatever StderrLevel says: the exit record's
	// "panic" attribute if the worker dies in it, else a stderr record of
	// its own, sent as soon as the first line that is not part of it
	// arrives or stderr has been quiet for capture.DefaultQuiet.
	StderrLevel string
}

// stderrLevels are the values of WorkerConfig.StderrLevel.
var stderrLevels = map[string]int32{
	"trace": record.LevelTrace, "debug": record.LevelDebug, "info": record.LevelInfo,
	"notice": record.LevelNotice, "warn": record.LevelWarn, "error": record.LevelError,
}

// SetDefaults fills in the zero-valued fields with their defaults.
func (w *WorkerConfig) SetDefaults() {
	if w.Count == 0 {
		w.Count = 1
	}
	if w.Restart == "" {
		w.Restart = RestartOnFailure
	}
	if w.BackoffInitial == 0 {
		w.BackoffInitial = 100 * time.Millisecond
	}
	if w.BackoffMax == 0 {
		w.BackoffMax = 30 * time.Second
	}
	if w.BackoffReset == 0 {
		w.BackoffReset = 30 * time.Second
	}
	if w.MaxRestarts == 0 {
		w.MaxRestarts = 10
	}
	if w.RestartWindow == 0 {
		w.RestartWindow = time.Minute
	}
	if w.StopSignal == 0 {
		w.StopSignal = syscall.SIGTERM
	}
	if w.StopTimeout == 0 {
		w.StopTimeout = 10 * time.Second
	}
	if w.DrainTimeout == 0 {
		w.DrainTimeout = 5 * time.Second
	}
	if w.MaxLineBytes == 0 {
		w.MaxLineBytes = 1 << 20
	}
	if w.MaxFrameBytes == 0 {
		w.MaxFrameBytes = 1 << 20
	}
	if w.RingBytes == 0 {
		w.RingBytes = DefaultRingBytes
	}
	if w.StderrLevel == "" {
		w.StderrLevel = "error"
	}
}

// StderrLevelNumber is the record level StderrLevel names (its severity
// number; see sdk/plugin's Level constants), or 0 if it names none.
func (w *WorkerConfig) StderrLevelNumber() int32 { return stderrLevels[w.StderrLevel] }

// DefaultRingBytes is WorkerConfig.RingBytes's default.
const DefaultRingBytes = 1 << 20

// Validate checks a WorkerConfig built in code, after SetDefaults (Load
// reports the same problems as ranged diagnostics).
func (w *WorkerConfig) Validate() error {
	switch {
	case w.Name == "":
		return fmt.Errorf("worker has no name")
	case w.Command == "":
		return fmt.Errorf("worker %q: no command", w.Name)
	case w.Count < 1:
		return fmt.Errorf("worker %q: count %d must be at least 1", w.Name, w.Count)
	}
	switch w.Restart {
	case RestartNever, RestartOnFailure, RestartAlways:
	default:
		return fmt.Errorf("worker %q: unknown restart policy %q (want never, on-failure or always)", w.Name, w.Restart)
	}
	if _, ok := stderrLevels[w.StderrLevel]; !ok {
		return fmt.Errorf("worker %q: unknown stderr level %q (want trace, debug, info, notice, warn or error)", w.Name, w.StderrLevel)
	}
	if r := w.RingBytes; r > 0 && (r < 4096 || r&(r-1) != 0) {
		return fmt.Errorf("worker %q: ring size %d is not a power of two >= 4096", w.Name, r)
	}
	if (w.User != "" && w.UID == nil) || (w.Group != "" && w.GID == nil) {
		return fmt.Errorf("worker %q: user/group %q/%q not resolved to ids", w.Name, w.User, w.Group)
	}
	return nil
}

// Load reads and checks an HCL configuration file. It compiles each
// plugin to check it and its configuration, and keeps nothing compiled; it
// opens no connection and starts nothing. On failure the error is
// hcl.Diagnostics, each naming file:line:col; FormatDiagnostics renders
// them.
func Load(filename string) (*Config, error) {
	src, err := readConfigFile(filename)
	if err != nil {
		return nil, err
	}
	return Parse(src, filename)
}

// Parse is Load for a configuration already in memory. Relative paths in
// it are resolved against filename's directory.
func Parse(src []byte, filename string) (*Config, error) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	baseDir, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		return nil, err
	}
	cfg, more := decodeConfig(f.Body, baseDir)
	diags = append(diags, more...)
	sortDiagnostics(diags)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, nil
}

// FormatDiagnostics renders each diagnostic as
// "file:line:col: error: summary; detail", on one line unless its detail
// has several (HCL's own can), which then follow indented by four spaces.
func FormatDiagnostics(err error) string {
	diags, ok := err.(hcl.Diagnostics)
	if !ok {
		return err.Error()
	}
	var b strings.Builder
	for _, d := range diags {
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d:%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		fmt.Fprintf(&b, "%s: %s", sev, d.Summary)
		// A diagnostic is one line, or continues on lines indented by
		// four spaces (HCL's own details can run over paragraphs).
		sep := "; "
		for _, line := range strings.Split(d.Detail, "\n") {
			if line = strings.TrimSpace(line); line != "" {
				b.WriteString(sep)
				b.WriteString(line)
				sep = "\n    "
			}
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// sortDiagnostics orders diagnostics by position, so that the user reads
// them in file order (attribute maps decode in random order).
func sortDiagnostics(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		if a == nil || b == nil {
			return a != nil
		}
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}

func pos(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}

var rootSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "plugin_dir"}, {Name: "dead_letter_dir"}},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "worker", LabelNames: []string{"name"}},
		{Type: "format", LabelNames: []string{"name"}},
		{Type: "transport", LabelNames: []string{"name"}},
		{Type: "server"},
	},
}

var workerSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "command", Required: true},
		{Name: "args"},
		{Name: "count"},
		{Name: "cwd"},
		{Name: "env"},
		{Name: "inherit_env"},
		{Name: "user"},
		{Name: "group"},
		{Name: "restart"},
		{Name: "backoff_initial"},
		{Name: "backoff_max"},
		{Name: "backoff_reset"},
		{Name: "max_restarts"},
		{Name: "restart_window"},
		{Name: "stop_signal"},
		{Name: "stop_timeout"},
		{Name: "drain_timeout"},
		{Name: "max_line_bytes"},
		{Name: "max_frame_bytes"},
		{Name: "ring_bytes"},
		{Name: "stderr_level"},
	},
}

func decodeConfig(body hcl.Body, baseDir string) (*Config, hcl.Diagnostics) {
	content, diags := body.Content(rootSchema)
	cfg := &Config{DeadLetterDir: filepath.Join(baseDir, "logtk-dead-letter")}
	for name, target := range map[string]*string{"plugin_dir": &cfg.PluginDir, "dead_letter_dir": &cfg.DeadLetterDir} {
		if a, ok := content.Attributes[name]; ok {
			diags = append(diags, gohcl.DecodeExpression(a.Expr, nil, target)...)
			if !filepath.IsAbs(*target) {
				*target = filepath.Join(baseDir, *target)
			}
		}
	}
	seen := map[string]*hcl.Block{}
	seenStage := map[string]*hcl.Block{}
	var transportBlocks []*pluginBlock
	for _, blk := range content.Blocks {
		if blk.Type == "server" {
			if cfg.Server != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate server block",
					Detail: "Only one server block is allowed.", Subject: blk.DefRange.Ptr()})
				continue
			}
			sc, d := decodeServer(blk, baseDir)
			diags = append(diags, d...)
			cfg.Server = sc
			continue
		}
		name := blk.Labels[0]
		if blk.Type != "worker" {
			key := blk.Type + " " + name
			if prev, dup := seenStage[key]; dup {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate " + blk.Type + " block",
					Detail:  fmt.Sprintf("A %s named %q was already defined at %s.", blk.Type, name, pos(prev.DefRange)),
					Subject: blk.LabelRanges[0].Ptr()})
				continue
			}
			seenStage[key] = blk
			pb, d := decodePluginBlock(context.Background(), blk.Type, blk, cfg.PluginDir, baseDir)
			diags = append(diags, d...)
			if pb == nil {
				continue
			}
			if blk.Type == "format" {
				cfg.Formats = append(cfg.Formats, FormatConfig{Name: name, Plugin: pb.plugin, SHA256: pb.sha256,
					Config: pb.config, Limits: pb.limits, Instances: pb.instances})
			} else {
				transportBlocks = append(transportBlocks, pb)
				cfg.Transports = append(cfg.Transports, TransportConfig{Name: name, Plugin: pb.plugin, SHA256: pb.sha256,
					Format: pb.format, Config: pb.config, Limits: pb.limits, Allow: pb.allow, Spool: pb.spool, AckTimeout: pb.ackTimeout})
			}
			continue
		}
		if prev, dup := seen[name]; dup {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate worker block",
				Detail:   fmt.Sprintf("A worker named %q was already defined at %s. Worker names must be unique.", name, pos(prev.DefRange)),
				Subject:  blk.LabelRanges[0].Ptr(),
			})
			continue
		}
		seen[name] = blk
		if !validName(name) {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid worker name",
				Detail:   fmt.Sprintf("Worker name %q must be 1-64 letters, digits, '-', '_' or '.'.", name),
				Subject:  blk.LabelRanges[0].Ptr(),
			})
		}
		w, d := decodeWorker(name, blk, baseDir)
		diags = append(diags, d...)
		if w != nil {
			cfg.Workers = append(cfg.Workers, *w)
		}
	}
	for _, pb := range transportBlocks {
		if pb.formatAttr == nil {
			continue
		}
		if _, ok := seenStage["format "+pb.format]; !ok {
			var names []string
			for _, f := range cfg.Formats {
				names = append(names, strconv.Quote(f.Name))
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown format",
				Detail:  fmt.Sprintf("transport %q refers to format %q, which is not defined (defined: %s).", pb.name, pb.format, orNone(strings.Join(names, ", "))),
				Subject: pb.formatAttr.Expr.Range().Ptr()})
		}
	}
	return cfg, diags
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func decodeWorker(name string, blk *hcl.Block, baseDir string) (*WorkerConfig, hcl.Diagnostics) {
	content, diags := blk.Body.Content(workerSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	w := &WorkerConfig{Name: name}
	attrs := content.Attributes
	errAt := func(a *hcl.Attribute, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: a.Expr.Range().Ptr()})
	}
	decode := func(key string, target any) *hcl.Attribute { return decodeAttr(attrs, key, target, &diags) }
	duration := func(key string, target *time.Duration) {
		var s string
		if a := decode(key, &s); a != nil {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 {
				errAt(a, "Invalid duration", fmt.Sprintf("%s = %q is not a positive duration such as \"500ms\" or \"1m30s\".", key, s))
				return
			}
			*target = d
		}
	}
	positive := func(key string, target *int, max int) {
		var n int
		if a := decode(key, &n); a != nil {
			if n < 1 || n > max {
				errAt(a, "Value out of range", fmt.Sprintf("%s = %d must be between 1 and %d.", key, n, max))
				return
			}
			*target = n
		}
	}
	size := func(key string, target *int, max uint64) {
		if a, n := decodeSize(attrs, key, &diags); a != nil {
			if n < 1 || n > max {
				errAt(a, "Value out of range", fmt.Sprintf("%s = %d bytes must be between 1 and %d.", key, n, max))
				return
			}
			*target = int(n)
		}
	}
	noNUL := func(a *hcl.Attribute, key string, vals ...string) {
		for _, v := range vals {
			if strings.ContainsRune(v, 0) {
				errAt(a, "Invalid argument", fmt.Sprintf("%s holds a NUL byte (%q), which no program can be passed.", key, v))
				return
			}
		}
	}

	if a := decode("command", &w.Command); a != nil {
		if strings.ContainsRune(w.Command, 0) {
			noNUL(a, "command", w.Command)
		} else if w.Command == "" {
			errAt(a, "Empty command", "command must name a program to run.")
		} else if path, err := resolveCommand(w.Command, baseDir); err != nil {
			errAt(a, "Command not found", err.Error())
		} else {
			w.Command = path
		}
	}
	if a := decode("args", &w.Args); a != nil {
		noNUL(a, "args", w.Args...)
	}
	positive("count", &w.Count, 1024)
	if a := decode("cwd", &w.Dir); a != nil {
		if !filepath.IsAbs(w.Dir) {
			w.Dir = filepath.Join(baseDir, w.Dir)
		}
		if st, err := os.Stat(w.Dir); err != nil || !st.IsDir() {
			errAt(a, "Invalid working directory", fmt.Sprintf("cwd %q is not a directory.", w.Dir))
		}
	}
	if a := decode("env", &w.Env); a != nil {
		for k, v := range w.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				errAt(a, "Invalid environment variable name", fmt.Sprintf("%q cannot be an environment variable name.", k))
			}
			noNUL(a, "env "+k, v)
		}
	}
	var inherit = true
	decode("inherit_env", &inherit)
	w.NoInheritEnv = !inherit

	if a := decode("user", &w.User); a != nil {
		u, err := user.Lookup(w.User)
		if err != nil {
			errAt(a, "Unknown user", fmt.Sprintf("There is no user named %q on this machine.", w.User))
		} else {
			uid, _ := strconv.ParseUint(u.Uid, 10, 32)
			gid, _ := strconv.ParseUint(u.Gid, 10, 32)
			uid32, gid32 := uint32(uid), uint32(gid)
			w.UID, w.GID = &uid32, &gid32
			if ids, err := u.GroupIds(); err == nil {
				for _, s := range ids {
					if g, err := strconv.ParseUint(s, 10, 32); err == nil {
						w.Groups = append(w.Groups, uint32(g))
					}
				}
			}
		}
	}
	if a := decode("group", &w.Group); a != nil {
		g, err := user.LookupGroup(w.Group)
		if err != nil {
			errAt(a, "Unknown group", fmt.Sprintf("There is no group named %q on this machine.", w.Group))
		} else {
			gid, _ := strconv.ParseUint(g.Gid, 10, 32)
			gid32 := uint32(gid)
			w.GID = &gid32
		}
	}
	var restart string
	if a := decode("restart", &restart); a != nil {
		switch p := RestartPolicy(restart); p {
		case RestartNever, RestartOnFailure, RestartAlways:
			w.Restart = p
		default:
			errAt(a, "Invalid restart policy", fmt.Sprintf("restart = %q; use \"never\", \"on-failure\" or \"always\".", restart))
		}
	}
	duration("backoff_initial", &w.BackoffInitial)
	duration("backoff_max", &w.BackoffMax)
	duration("backoff_reset", &w.BackoffReset)
	positive("max_restarts", &w.MaxRestarts, 1_000_000)
	duration("restart_window", &w.RestartWindow)
	var sig string
	if a := decode("stop_signal", &sig); a != nil {
		s := unix.SignalNum(strings.ToUpper(ensureSIG(sig)))
		if s == 0 {
			errAt(a, "Unknown signal", fmt.Sprintf("stop_signal = %q is not a signal name such as \"SIGTERM\" or \"INT\".", sig))
		} else {
			w.StopSignal = s
		}
	}
	duration("stop_timeout", &w.StopTimeout)
	duration("drain_timeout", &w.DrainTimeout)
	size("max_line_bytes", &w.MaxLineBytes, 64<<20)
	size("max_frame_bytes", &w.MaxFrameBytes, 64<<20)
	if a, n := decodeSize(attrs, "ring_bytes", &diags); a != nil {
		ring := int(min(n, 1<<40))
		switch {
		case ring == 0:
			w.RingBytes = -1
		case ring < 4096 || ring > 1<<30 || ring&(ring-1) != 0:
			errAt(a, "Invalid ring size", fmt.Sprintf("ring_bytes = %d must be a power of two between 4096 and 1073741824, or 0 for no shared-memory ring.", ring))
		default:
			w.RingBytes = ring
		}
	}
	if a := decode("stderr_level", &w.StderrLevel); a != nil {
		if _, ok := stderrLevels[w.StderrLevel]; !ok {
			errAt(a, "Invalid stderr level", fmt.Sprintf("stderr_level = %q; use \"trace\", \"debug\", \"info\", \"notice\", \"warn\" or \"error\".", w.StderrLevel))
		}
	}

	w.SetDefaults()
	if w.BackoffMax < w.BackoffInitial {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid backoff",
			Detail:  fmt.Sprintf("backoff_max (%s) is shorter than backoff_initial (%s).", w.BackoffMax, w.BackoffInitial),
			Subject: blk.DefRange.Ptr()})
	}
	return w, diags
}

func ensureSIG(s string) string {
	if strings.HasPrefix(strings.ToUpper(s), "SIG") {
		return s
	}
	return "SIG" + s
}

// resolveCommand finds the program: a name without a slash in PATH, a
// relative path against the configuration's directory.
func resolveCommand(cmd, baseDir string) (string, error) {
	if !strings.Contains(cmd, "/") {
		p, err := exec.LookPath(cmd)
		if err != nil {
			return "", fmt.Errorf("%q was not found in PATH.", cmd)
		}
		return p, nil
	}
	if !filepath.IsAbs(cmd) {
		cmd = filepath.Join(baseDir, cmd)
	}
	st, err := os.Stat(cmd)
	if err != nil {
		return "", fmt.Errorf("%q does not exist (relative commands are resolved against the configuration file's directory).", cmd)
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%q is not an executable file.", cmd)
	}
	return cmd, nil
}

func orNone(s string) string {
	if s == "" {
		return "none that loaded"
	}
	return s
}

// decodeAttr decodes the attribute name of attrs into target, adding any
// diagnostics to diags. It returns the attribute, or nil when it is absent
// or does not decode.
func decodeAttr(attrs hcl.Attributes, name string, target any, diags *hcl.Diagnostics) *hcl.Attribute {
	a, ok := attrs[name]
	if !ok {
		return nil
	}
	d := gohcl.DecodeExpression(a.Expr, nil, target)
	*diags = append(*diags, d...)
	if d.HasErrors() {
		return nil
	}
	return a
}
