package config

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/logtk/logtk/record"
	"golang.org/x/sys/unix"
)

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

// workerAttrs declares a worker block's attributes.
func workerAttrs(w *WorkerConfig, baseDir string) attrs {
	inherit := func(a *hcl.Attribute) hcl.Diagnostics {
		var v bool
		d := decodeExpr(a.Expr, &v)
		w.NoInheritEnv = !v
		return d
	}
	restart := func(a *hcl.Attribute) hcl.Diagnostics {
		var p string
		d := into(&p, oneOf("Invalid restart policy", `"never", "on-failure" or "always"`, string(RestartNever), string(RestartOnFailure), string(RestartAlways)))(a)
		w.Restart = RestartPolicy(p)
		return d
	}
	bytes := func(name string, n uint64) (string, string) {
		if n < 1 || n > 64<<20 {
			return "Value out of range", fmt.Sprintf("%s = %d bytes must be between 1 and %d.", name, n, 64<<20)
		}
		return "", ""
	}
	return attrs{
		{"command", true, command(&w.Command, baseDir)},
		{"args", false, into(&w.Args, noNUL)},
		{"count", false, into(&w.Count, between(1, 1024))},
		{"cwd", false, workDir(&w.Dir, baseDir)},
		{"env", false, env(&w.Env)},
		{"inherit_env", false, inherit},
		{"user", false, lookupUser(w)},
		{"group", false, lookupGroup(w)},
		{"restart", false, restart},
		{"backoff_initial", false, positiveDuration(&w.BackoffInitial)},
		{"backoff_max", false, positiveDuration(&w.BackoffMax)},
		{"backoff_reset", false, positiveDuration(&w.BackoffReset)},
		{"max_restarts", false, into(&w.MaxRestarts, between(1, 1_000_000))},
		{"restart_window", false, positiveDuration(&w.RestartWindow)},
		{"stop_signal", false, signal(&w.StopSignal)},
		{"stop_timeout", false, positiveDuration(&w.StopTimeout)},
		{"drain_timeout", false, positiveDuration(&w.DrainTimeout)},
		{"max_line_bytes", false, size(&w.MaxLineBytes, bytes)},
		{"max_frame_bytes", false, size(&w.MaxFrameBytes, bytes)},
		{"ring_bytes", false, ringBytes(&w.RingBytes)},
		{"stderr_level", false, into(&w.StderrLevel, oneOf("Invalid stderr level", `"trace", "debug", "info", "notice", "warn" or "error"`, "trace", "debug", "info", "notice", "warn", "error"))},
	}
}

func decodeWorker(name string, blk *hcl.Block, baseDir string) (*WorkerConfig, hcl.Diagnostics) {
	w := &WorkerConfig{Name: name}
	content, diags := workerAttrs(w, baseDir).content(blk.Body)
	if content == nil {
		return nil, diags
	}
	w.SetDefaults()
	if w.BackoffMax < w.BackoffInitial {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid backoff",
			Detail:  fmt.Sprintf("backoff_max (%s) is shorter than backoff_initial (%s).", w.BackoffMax, w.BackoffInitial),
			Subject: blk.DefRange.Ptr()})
	}
	return w, diags
}

// noNUL refuses strings no program can be passed.
func noNUL(name string, vals []string) (string, string) {
	for _, v := range vals {
		if strings.ContainsRune(v, 0) {
			return "Invalid argument", fmt.Sprintf("%s holds a NUL byte (%q), which no program can be passed.", name, v)
		}
	}
	return "", ""
}

// command decodes the program to run, resolved as resolveCommand does.
func command(target *string, baseDir string) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		var c string
		if d := decodeExpr(a.Expr, &c); d.HasErrors() {
			return d
		}
		if summary, detail := noNUL("command", []string{c}); summary != "" {
			return valueError(a, summary, "%s", detail)
		}
		if c == "" {
			return valueError(a, "Empty command", "command must name a program to run.")
		}
		p, err := resolveCommand(c, baseDir)
		if err != nil {
			return valueError(a, "Command not found", "%s", err.Error())
		}
		*target = p
		return nil
	}
}

// workDir decodes a working directory, which must exist.
func workDir(target *string, baseDir string) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		if d := path(target, baseDir)(a); d.HasErrors() {
			return d
		}
		if st, err := os.Stat(*target); err != nil || !st.IsDir() {
			return valueError(a, "Invalid working directory", "cwd %q is not a directory.", *target)
		}
		return nil
	}
}

// env decodes environment variables, reporting every bad name and value.
func env(target *map[string]string) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		var m map[string]string
		diags := decodeExpr(a.Expr, &m)
		if diags.HasErrors() {
			return diags
		}
		for k, v := range m {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				diags = append(diags, valueError(a, "Invalid environment variable name", "%q cannot be an environment variable name.", k)...)
			}
			if summary, detail := noNUL("env "+k, []string{v}); summary != "" {
				diags = append(diags, valueError(a, summary, "%s", detail)...)
			}
		}
		*target = m
		return diags
	}
}

// lookupUser decodes user, resolving its ids and groups.
func lookupUser(w *WorkerConfig) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		if d := decodeExpr(a.Expr, &w.User); d.HasErrors() {
			return d
		}
		u, err := user.Lookup(w.User)
		if err != nil {
			return valueError(a, "Unknown user", "There is no user named %q on this machine.", w.User)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		uid32, gid32 := uint32(uid), uint32(gid)
		w.UID = &uid32
		if w.GID == nil { // a group attribute wins
			w.GID = &gid32
		}
		if ids, err := u.GroupIds(); err == nil {
			for _, s := range ids {
				if g, err := strconv.ParseUint(s, 10, 32); err == nil {
					w.Groups = append(w.Groups, uint32(g))
				}
			}
		}
		return nil
	}
}

// lookupGroup decodes group, resolving its id.
func lookupGroup(w *WorkerConfig) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		if d := decodeExpr(a.Expr, &w.Group); d.HasErrors() {
			return d
		}
		g, err := user.LookupGroup(w.Group)
		if err != nil {
			return valueError(a, "Unknown group", "There is no group named %q on this machine.", w.Group)
		}
		gid, _ := strconv.ParseUint(g.Gid, 10, 32)
		gid32 := uint32(gid)
		w.GID = &gid32
		return nil
	}
}

// signal decodes a signal name, with or without SIG.
func signal(target *syscall.Signal) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		var name string
		if d := decodeExpr(a.Expr, &name); d.HasErrors() {
			return d
		}
		s := unix.SignalNum(strings.ToUpper(ensureSIG(name)))
		if s == 0 {
			return valueError(a, "Unknown signal", "stop_signal = %q is not a signal name such as \"SIGTERM\" or \"INT\".", name)
		}
		*target = s
		return nil
	}
}

// ringBytes decodes the ring's size: 0 for none (stored as -1).
func ringBytes(target *int) func(*hcl.Attribute) hcl.Diagnostics {
	return func(a *hcl.Attribute) hcl.Diagnostics {
		n, d := sizeValue(a)
		if d.HasErrors() {
			return d
		}
		ring := int(min(n, 1<<40))
		switch {
		case ring == 0:
			*target = -1
		case ring < 4096 || ring > 1<<30 || ring&(ring-1) != 0:
			return valueError(a, "Invalid ring size", "ring_bytes = %d must be a power of two between 4096 and 1073741824, or 0 for no shared-memory ring.", ring)
		default:
			*target = ring
		}
		return nil
	}
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
