// Package wasm loads logtk plugins (docs/plugin-abi.md) with wazero and
// calls them inside their sandbox.
//
// A Module is compiled once and is safe for concurrent use; it makes
// Instances. An Instance is NOT safe for concurrent use: one goroutine at a
// time (wazero #2217). After any call fails with a *CallError whose Broken
// is true the Instance must be closed and replaced.
package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/logtk/logtk/internal/entries"
	"github.com/logtk/logtk/internal/marks"
	"github.com/logtk/logtk/internal/wasm/budget"
	"github.com/logtk/logtk/internal/wasm/rootfs"
)

// ABIVersion is the newest plugin ABI version this host speaks; it
// speaks every version from MinABIVersion up. Version 2 added
// StatusUnchanged.
const (
	ABIVersion    = 2
	MinABIVersion = 1
)

// Status codes returned by plugin calls.
const (
	StatusOK       = 0
	StatusRetry    = 1
	StatusInvalid  = 2
	StatusInternal = 3
	// StatusPending: logtk_write took the batch but has not delivered it
	// yet; logtk_poll will report it.
	StatusPending = 4
	// StatusUnchanged (ABI 2, logtk_format only): the formatted batch is
	// the input batch, byte for byte, and there is no result to read.
	StatusUnchanged = 5
)

// Defaults for Limits.
const (
	DefaultMemoryLimit = 64 << 20
	DefaultCallTimeout = 5 * time.Second
)

// Limits bound what one instance may use.
type Limits struct {
	// MemoryBytes caps the module's linear memory. Default 64 MiB.
	MemoryBytes uint64
	// CallTimeout bounds each call. Default 5s.
	CallTimeout time.Duration
	// NoCallTimeout compiles the module without the interruption checks
	// that enforce CallTimeout: a call then runs to its end however long
	// it takes. The checks cost part of a Go plugin's time (BENCHMARKS.md);
	// this is for trusted plugins and for measuring that cost. (The module's jumps are
	// threaded either way: package budget.)
	NoCallTimeout bool
}

// Dir is a host directory made visible to the plugin.
type Dir struct {
	Host     string // directory on the host
	Guest    string // where the plugin sees it; default: same as Host
	ReadOnly bool
	// Wrap, when set, wraps the directory's file system (confined as
	// for any grant) before the plugin sees it: tests inject failures,
	// a full disk, with it.
	Wrap func(experimentalsys.FS) experimentalsys.FS
}

// Grants are the capabilities a plugin gets beyond computing. The zero
// value grants nothing.
type Grants struct {
	Dirs  []Dir
	Clock bool // real wall and monotonic clocks instead of a fixed fake
	// Stdout and Stderr, when set, receive the plugin's standard output
	// and error instead of the host log (a console transport).
	Stdout, Stderr io.Writer
	// Endpoints the plugin may dial by name (net_dial).
	Endpoints map[string]Endpoint
	// Kafka clusters the plugin may produce to by name (kafka_produce).
	Kafka map[string]KafkaGrant
}

// Options configure Load.
type Options struct {
	// Name identifies the plugin in errors and logs ("format text").
	Name   string
	Limits Limits
	Grants Grants
	// SHA256, when set, must match the module's digest (hex).
	SHA256 string
	// Logger receives the plugin's log calls and its stdout/stderr lines.
	Logger hclog.Logger
	// CacheDir holds wazero's compilation cache. Default: the user cache
	// directory; "-" disables the cache.
	CacheDir string
}

// Info is what a plugin says about itself (logtk_info).
type Info struct {
	Name    string  `json:"name"`
	Version string  `json:"version"`
	Kind    string  `json:"kind"`
	ABI     int     `json:"abi"`
	Config  []Field `json:"config"`
}

// Field is one declared configuration field.
type Field struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Required bool   `json:"required"`
	Doc      string `json:"doc"`
}

// Module is a compiled plugin.
type Module struct {
	name   string
	opts   Options
	rt     wazero.Runtime
	cm     wazero.CompiledModule
	info   Info
	digest string
	logger atomic.Pointer[hclog.Logger] // opts.Logger, replaceable by SetLogger
	// inlineBudget: the module was rewritten to check a stop flag, which
	// the host sets when a call's budget runs out (package budget).
	inlineBudget bool
	// instances maps each live instance's api.Module to the instance, for
	// the net_* host functions (which are given the calling module).
	instances sync.Map
}

var (
	cacheMu sync.Mutex
	caches  = map[string]wazero.CompilationCache{}
)

func compilationCache(dir string) wazero.CompilationCache {
	if dir == "-" {
		return nil
	}
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil
		}
		dir = filepath.Join(base, "logtk", "wazero")
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if c, ok := caches[dir]; ok {
		return c
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil
	}
	caches[dir] = c
	return c
}

// allowedImports are the only host functions a plugin may import besides
// WASI.
var allowedImports = map[string]bool{"log": true, "net_dial": true, "net_write": true, "net_read": true, "net_close": true, "net_error": true,
	"kafka_produce": true, "kafka_wait": true, "kafka_error": true}

// compiling holds a lock per module being compiled (by its digest), so
// that a module loaded twice at once (two stages of one plugin, with the
// same time budget setting) is compiled once: the second Load reads the
// first's from the cache.
var compiling sync.Map

func compile(ctx context.Context, rt wazero.Runtime, code []byte, digest, cacheDir string) (wazero.CompiledModule, error) {
	if compilationCache(cacheDir) != nil {
		mu, _ := compiling.LoadOrStore(digest, new(sync.Mutex))
		mu.(*sync.Mutex).Lock()
		defer mu.(*sync.Mutex).Unlock()
	}
	cm, err := rt.CompileModule(ctx, code)
	// The compiler's garbage is many times the module's size: collected
	// now, so that each compile grows the heap from what is live, not
	// from the last one's garbage (config compiles a configuration's
	// modules on all cores: their garbage would add up in the host's peak
	// RSS; BENCHMARKS.md). A load from the cache makes little garbage,
	// and the collection then costs little.
	runtime.GC()
	return cm, err
}

// Load compiles a plugin, checks its imports, exports, ABI version and
// digest, and reads its Info. It does no I/O beyond reading the cache.
func Load(ctx context.Context, wasmBytes []byte, opts Options) (*Module, error) {
	sum := sha256.Sum256(wasmBytes)
	digest := hex.EncodeToString(sum[:])
	if opts.SHA256 != "" && opts.SHA256 != digest {
		return nil, fmt.Errorf("plugin[%s]: sha256 is %s, configuration requires %s", opts.Name, digest, opts.SHA256)
	}
	if opts.Limits.MemoryBytes == 0 {
		opts.Limits.MemoryBytes = DefaultMemoryLimit
	}
	if opts.Limits.CallTimeout == 0 {
		opts.Limits.CallTimeout = DefaultCallTimeout
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	pages := uint32(opts.Limits.MemoryBytes / 65536)
	if pages == 0 || opts.Limits.MemoryBytes > 4<<30 {
		return nil, fmt.Errorf("plugin[%s]: memory limit %d bytes out of range (64 KiB .. 4 GiB)", opts.Name, opts.Limits.MemoryBytes)
	}
	if err := budget.CheckSizes(wasmBytes); err != nil {
		return nil, fmt.Errorf("plugin[%s]: not a valid WebAssembly module: %w", opts.Name, err)
	}
	// The time budget: inline checks of a stop flag (package budget) when the
	// module can be rewritten, else wazero's own checks.
	code, inline := wasmBytes, false
	if !opts.Limits.NoCallTimeout {
		if ib, err := budget.Instrument(wasmBytes); err == nil {
			code, inline = ib, true
		} else {
			opts.Logger.Debug("time budget through wazero's checks", "plugin", opts.Name, "reason", err)
		}
	} else if tb, err := budget.ThreadOnly(wasmBytes); err == nil {
		code = tb
	}
	rc := wazero.NewRuntimeConfig().WithMemoryLimitPages(pages).WithCloseOnContextDone(!opts.Limits.NoCallTimeout && !inline)
	if c := compilationCache(opts.CacheDir); c != nil {
		rc = rc.WithCompilationCache(c)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	m := &Module{name: opts.Name, opts: opts, rt: rt, digest: digest, inlineBudget: inline}
	m.logger.Store(&opts.Logger)
	fail := func(err error) (*Module, error) {
		rt.Close(ctx)
		return nil, fmt.Errorf("plugin[%s]: %w", opts.Name, err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return fail(err)
	}
	if err := m.instantiateHostModule(ctx); err != nil {
		return fail(err)
	}
	cm, err := compile(ctx, rt, code, digest, opts.CacheDir)
	if err != nil && strings.Contains(err.Error(), "over limit of") {
		return fail(fmt.Errorf("the module starts with more memory than its memory limit of %d bytes allows (%w)", opts.Limits.MemoryBytes, err))
	}
	if err != nil {
		return fail(fmt.Errorf("not a valid WebAssembly module: %w", err))
	}
	m.cm = cm
	for _, f := range cm.ImportedFunctions() {
		mod, name, _ := f.Import()
		if mod == wasi_snapshot_preview1.ModuleName || (mod == "logtk" && allowedImports[name]) {
			continue
		}
		return fail(fmt.Errorf("imports %s.%s, which the plugin ABI does not provide", mod, name))
	}
	exports := cm.ExportedFunctions()
	for _, name := range []string{"logtk_abi_version", "logtk_alloc", "logtk_result", "logtk_info", "logtk_configure"} {
		if _, ok := exports[name]; !ok {
			return fail(fmt.Errorf("does not export %s: not a logtk plugin (see docs/plugin-abi.md)", name))
		}
	}
	inst, err := m.NewInstance(ctx)
	if err != nil {
		rt.Close(ctx)
		return nil, err // named after the plugin already
	}
	defer inst.Close(ctx)
	octx, cancel := inst.opCtx(ctx)
	defer cancel()
	st, res, err := inst.call(octx, "logtk_info")
	if err != nil {
		return fail(err)
	}
	if st != StatusOK {
		return fail(fmt.Errorf("logtk_info failed: %s", res))
	}
	if err := json.Unmarshal(res, &m.info); err != nil {
		return fail(fmt.Errorf("logtk_info returned invalid JSON: %w", err))
	}
	// What the kit (sdk/plugintest) checks too: a name and a version to
	// name the plugin by in logs, and an "abi", when given, that agrees
	// with logtk_abi_version (which is what the host goes by).
	if m.info.Name == "" || m.info.Version == "" {
		return fail(errors.New(`logtk_info: "name" and "version" must not be empty`))
	}
	if m.info.ABI != 0 && uint32(m.info.ABI) != inst.abi {
		return fail(fmt.Errorf(`logtk_info says "abi": %d, but logtk_abi_version returns %d`, m.info.ABI, inst.abi))
	}
	switch m.info.Kind {
	case "format":
		if _, ok := exports["logtk_format"]; !ok {
			return fail(errors.New("says it is a format plugin but does not export logtk_format"))
		}
	case "transport":
		for _, name := range []string{"logtk_open", "logtk_write", "logtk_flush", "logtk_close"} {
			if _, ok := exports[name]; !ok {
				return fail(fmt.Errorf("says it is a transport plugin but does not export %s", name))
			}
		}
	default:
		return fail(fmt.Errorf("logtk_info: unknown kind %q (want format or transport)", m.info.Kind))
	}
	return m, nil
}

// InlineBudget reports whether the module was rewritten to check its time
// budget inline (package budget) rather than through wazero's slower checks.
func (m *Module) InlineBudget() bool { return m.inlineBudget }

// Exports reports whether the module exports a function.
func (m *Module) Exports(name string) bool {
	_, ok := m.cm.ExportedFunctions()[name]
	return ok
}

// Info returns what the plugin said about itself.
func (m *Module) Info() Info { return m.info }

// SHA256 returns the module's digest, hex-encoded.
func (m *Module) SHA256() string { return m.digest }

// Close releases the module and all its instances.
func (m *Module) Close(ctx context.Context) error {
	err := m.rt.Close(ctx)
	m.closeKafka()
	return err
}

func (m *Module) instantiateHostModule(ctx context.Context) error {
	b := m.rt.NewHostModuleBuilder("logtk")
	i32 := api.ValueTypeI32
	sigs := map[string][]api.ValueType{
		"net_dial": {i32, i32}, "net_write": {i32, i32, i32}, "net_read": {i32, i32, i32, i32},
		"net_close": {i32}, "net_error": {i32, i32},
		"kafka_produce": {i32, i32, i32, i32, i32, i32}, "kafka_wait": {i32, i32}, "kafka_error": {i32, i32},
	}
	for name, fn := range m.netFunctions() {
		b = b.NewFunctionBuilder().WithGoModuleFunction(fn, sigs[name], []api.ValueType{i32}).Export(name)
	}
	for name, fn := range m.kafkaFunctions() {
		b = b.NewFunctionBuilder().WithGoModuleFunction(fn, sigs[name], []api.ValueType{i32}).Export(name)
	}
	_, err := b.
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, mod api.Module, stack []uint64) {
			level, p, n := int32(stack[0]), uint32(stack[1]), uint32(stack[2])
			if n > 64<<10 {
				n = 64 << 10
			}
			b, ok := mod.Memory().Read(p, n)
			if !ok {
				m.log().Warn("plugin log call with an out-of-range buffer", "ptr", p, "len", n)
				return
			}
			logAt(m.log(), level, string(b))
		}), []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, nil).
		Export("log").
		Instantiate(ctx)
	return err
}

func logAt(l hclog.Logger, level int32, msg string) {
	switch {
	case level >= 17:
		l.Error(msg)
	case level >= 13:
		l.Warn(msg)
	case level >= 9:
		l.Info(msg)
	case level >= 5:
		l.Debug(msg)
	default:
		l.Trace(msg)
	}
}

// Instance is one instantiation of a Module. Not safe for concurrent use.
type Instance struct {
	net   *netState
	kafka *kafkaState
	dirs  []*rootfs.FS // the granted directories, released at Close
	m     *Module
	mod   api.Module
	abi   uint32 // the ABI version the plugin speaks
	fns   map[string]api.Function
	// keepsMarks: the transport answered logtk_marks with 0, so every
	// logtk_write input carries its batch's marks.
	keepsMarks bool
	// lastCall and lastFn: the export call looked up last (an instance
	// makes the same call over and over, and the map's string hash showed
	// in its profile).
	lastCall string
	lastFn   api.Function
	resultFn api.Function // logtk_result
	broken   bool
	// inPtr and inCap: the input buffer logtk_alloc returned last.
	inPtr, inCap uint32
	// stack holds the parameters and results of the call in progress
	// (an instance makes one call at a time).
	stack  [4]uint64
	stdout *lineLogger
	stderr *lineLogger

	// The inline time budget (stop is nil without): stop is the module's
	// stop flag. One timer and one watch of the caller's context serve
	// every operation, so that an operation allocates nothing for its
	// budget (a context with a deadline and an AfterFunc per operation
	// cost more than formatting a batch: BENCHMARKS.md). stopMu
	// orders the timer and the watch against the operation in progress.
	stop     api.MutableGlobal
	stopMu   sync.Mutex
	active   bool          // an operation is in progress
	deadline time.Duration // the budget's end of the last operation begun, on monoNow's clock
	fired    string        // why the flag was set for it ("" if it was not)
	timer    *time.Timer
	armed    bool            // timer is pending
	watched  <-chan struct{} // the Done channel watched for cancellation
	unwatch  func() bool
	endOp    func() // i.finishOp, bound once
}

// NewInstance instantiates the module in its sandbox and checks its ABI
// version.
func (m *Module) NewInstance(ctx context.Context) (*Instance, error) {
	inst := &Instance{
		net:    &netState{conns: map[int32]net.Conn{}},
		kafka:  &kafkaState{tickets: map[int32]*kafkaTicket{}},
		m:      m,
		fns:    map[string]api.Function{},
		stdout: &lineLogger{l: m.log(), level: 9},
		stderr: &lineLogger{l: m.log(), level: 13},
	}
	start := []string{"_initialize"}
	if m.inlineBudget {
		start = nil // run below, once the stop flag can be reached
	}
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(start...).
		WithStdout(orWriter(m.opts.Grants.Stdout, inst.stdout)).
		WithStderr(orWriter(m.opts.Grants.Stderr, inst.stderr)).
		WithRandSource(rand.Reader) // unpredictable map seeds; not a capability
	if m.opts.Grants.Clock {
		mc = mc.WithSysWalltime().WithSysNanotime().WithSysNanosleep()
	}
	if len(m.opts.Grants.Dirs) > 0 {
		fsc, err := inst.mountDirs()
		if err != nil {
			return nil, fmt.Errorf("plugin[%s]: instantiate: %w", m.name, err)
		}
		mc = mc.WithFSConfig(fsc)
	}
	ctx2, cancel := context.WithTimeout(ctx, m.opts.Limits.CallTimeout)
	defer cancel()
	mod, err := m.rt.InstantiateModule(ctx2, m.cm, mc)
	if err != nil {
		inst.closeDirs()
		return nil, fmt.Errorf("plugin[%s]: instantiate: %w", m.name, err)
	}
	inst.mod = mod
	inst.endOp = inst.finishOp
	m.instances.Store(mod, inst)
	for name := range m.cm.ExportedFunctions() {
		inst.fns[name] = mod.ExportedFunction(name)
	}
	inst.resultFn = inst.fns["logtk_result"]
	if m.inlineBudget {
		g, ok := mod.ExportedGlobal(budget.StopExport).(api.MutableGlobal)
		if !ok {
			inst.Close(ctx)
			return nil, fmt.Errorf("plugin[%s]: instantiate: the stop flag is missing", m.name)
		}
		inst.stop = g
		if init := mod.ExportedFunction("_initialize"); init != nil {
			octx, ocancel := inst.opCtx(ctx)
			_, err := init.Call(octx)
			ocancel()
			if err != nil {
				inst.Close(ctx)
				return nil, fmt.Errorf("plugin[%s]: instantiate: _initialize %s", m.name, inst.describe(octx, err))
			}
		}
	}
	vctx, vcancel := inst.opCtx(ctx)
	v, err := inst.fns["logtk_abi_version"].Call(vctx)
	vcancel()
	if err != nil {
		inst.Close(ctx)
		return nil, fmt.Errorf("plugin[%s]: logtk_abi_version: %w", m.name, err)
	}
	if abi := uint32(v[0]); abi < MinABIVersion || abi > ABIVersion {
		inst.Close(ctx)
		return nil, fmt.Errorf("plugin[%s] speaks plugin ABI %d, this host speaks %d to %d", m.name, abi, MinABIVersion, ABIVersion)
	}
	inst.abi = uint32(v[0])
	return inst, nil
}

// SetLogger replaces the logger that instances created from now on write
// the plugin's output and logtk.log calls to.
func (m *Module) SetLogger(l hclog.Logger) { m.logger.Store(&l) }

// log returns the module's current logger.
func (m *Module) log() hclog.Logger { return *m.logger.Load() }

// Close discards the instance.
func (i *Instance) Close(ctx context.Context) error {
	i.m.instances.Delete(i.mod)
	i.stopMu.Lock()
	if i.timer != nil {
		i.timer.Stop()
	}
	if i.unwatch != nil {
		i.unwatch()
	}
	i.stopMu.Unlock()
	i.net.closeAll()
	i.stdout.flush()
	i.stderr.flush()
	err := i.mod.Close(ctx)
	i.closeDirs()
	return err
}

// mountDirs opens the granted directories, each confined by rootfs (a
// plugin's file operations stay beneath the directory whatever its links
// say), for this instance.
func (i *Instance) mountDirs() (wazero.FSConfig, error) {
	fsc := wazero.NewFSConfig().(sysfs.FSConfig)
	cfg := fsc.(wazero.FSConfig)
	for _, d := range i.m.opts.Grants.Dirs {
		guest := d.Guest
		if guest == "" {
			guest = d.Host
		}
		r, err := rootfs.New(d.Host, rootfs.Options{})
		if errors.Is(err, os.ErrNotExist) {
			// Not made yet (validate makes nothing; the host makes it
			// before the instances that use it): nothing to mount, and
			// the plugin finds no such directory.
			continue
		}
		if err != nil {
			i.closeDirs()
			return nil, fmt.Errorf("granted directory: %w", err)
		}
		i.dirs = append(i.dirs, r)
		var fs experimentalsys.FS = r
		if d.Wrap != nil {
			fs = d.Wrap(fs)
		}
		if d.ReadOnly {
			fs = &sysfs.ReadFS{FS: fs}
		}
		cfg = fsc.WithSysFSMount(fs, guest)
		fsc = cfg.(sysfs.FSConfig)
	}
	return cfg, nil
}

// closeDirs releases the granted directories.
func (i *Instance) closeDirs() {
	for _, d := range i.dirs {
		d.Close()
	}
	i.dirs = nil
}

// Broken reports whether a call left the instance unusable.
func (i *Instance) Broken() bool { return i.broken }

// CallError is a failed plugin call.
type CallError struct {
	Plugin string
	Call   string
	Status int    // the plugin's status code, or -1 for a trap/timeout/garbage
	Msg    string // the plugin's message or what went wrong
	// Broken: the instance trapped, ran out of time or memory, returned
	// garbage, or answered logtk_format with a status other than 1 or 2
	// (3: out of memory, or failed); it must be discarded.
	Broken bool
	Err    error
}

func (e *CallError) Error() string {
	return fmt.Sprintf("plugin[%s] call[%s] failed: %s", e.Plugin, e.Call, e.Msg)
}

func (e *CallError) Unwrap() error { return e.Err }

// Retryable reports whether the plugin asked for the call to be retried.
func (e *CallError) Retryable() bool { return e.Status == StatusRetry }

func (i *Instance) brokenErr(call string, msg string, err error) *CallError {
	i.broken = true
	return &CallError{Plugin: i.m.name, Call: call, Status: -1, Msg: msg, Broken: true, Err: err}
}

// opCtx returns the context of one host operation (Format, Write, ...)
// and the function that ends it: the operation's calls into the plugin
// share its time budget, which ends early if ctx is cancelled.
//
// With the inline budget the returned context is ctx itself, and nothing
// is allocated: the operation's deadline is kept in the instance, a
// reusable timer sets the stop flag when it passes, and a watch of ctx,
// registered again only when the caller passes a context with another
// Done channel, sets it when ctx is cancelled.
func (i *Instance) opCtx(ctx context.Context) (context.Context, func()) {
	if i.stop == nil {
		if i.m.opts.Limits.NoCallTimeout {
			return ctx, func() {}
		}
		// wazero enforces ctx's deadline itself (WithCloseOnContextDone).
		ctx, cancel := context.WithTimeout(ctx, i.m.opts.Limits.CallTimeout)
		return ctx, cancel
	}
	now := monoNow()
	i.stopMu.Lock()
	i.active, i.fired = true, ""
	i.deadline = now + i.m.opts.Limits.CallTimeout
	i.stop.Set(0)
	if ctx.Err() != nil {
		i.fired = "cancelled"
		i.stop.Set(1)
	}
	if !i.armed {
		// An armed timer was set for an earlier operation's deadline,
		// which is before this one's: when it fires it re-arms for this.
		// (Reset at every start and Stop at every end cost a sixth more
		// on a call of one record: BENCHMARKS.md.)
		i.armed = true
		if i.timer == nil {
			i.timer = time.AfterFunc(i.m.opts.Limits.CallTimeout, i.timeUp)
		} else {
			i.timer.Reset(i.m.opts.Limits.CallTimeout)
		}
	}
	i.stopMu.Unlock()
	if d := ctx.Done(); d != nil && d != i.watched {
		if i.unwatch != nil {
			i.unwatch()
		}
		i.watched, i.unwatch = d, context.AfterFunc(ctx, i.cancelled)
	}
	return ctx, i.endOp
}

// monoEpoch is the origin of monoNow's clock.
var monoEpoch = time.Now()

// monoNow reads the monotonic clock only: one vDSO call, where time.Now
// makes two.
func monoNow() time.Duration { return time.Since(monoEpoch) }

// finishOp ends the operation opCtx began.
func (i *Instance) finishOp() {
	i.stopMu.Lock()
	i.active = false
	i.stopMu.Unlock()
}

// timeUp runs when the budget timer fires: it stops the operation in
// progress if its deadline has passed, and otherwise waits for the
// deadline of the operation now in progress, if any.
func (i *Instance) timeUp() {
	i.stopMu.Lock()
	defer i.stopMu.Unlock()
	i.armed = false
	if !i.active || i.fired != "" {
		return
	}
	if left := i.deadline - monoNow(); left > 0 {
		i.armed = true
		i.timer.Reset(left)
		return
	}
	i.fired = fmt.Sprintf("ran past its time budget of %s", i.m.opts.Limits.CallTimeout)
	i.stop.Set(1)
}

// cancelled runs when the watched context is cancelled: it stops the
// operation in progress (later ones find ctx.Err set as they begin).
func (i *Instance) cancelled() {
	i.stopMu.Lock()
	defer i.stopMu.Unlock()
	if i.active && i.fired == "" {
		i.fired = "cancelled"
		i.stop.Set(1)
	}
}

// describe explains a failed call: a trap, or the end of its budget.
func (i *Instance) describe(ctx context.Context, err error) string {
	if i.stop != nil {
		i.stopMu.Lock()
		fired := i.fired
		i.stopMu.Unlock()
		if fired != "" {
			return fired
		}
	}
	return describeTrap(err, i.m.opts.Limits)
}

// call calls an export (ctx comes from opCtx) and returns its status and
// result. The result is the plugin's memory, valid until the next call on
// the instance: callers that keep it copy it.
func (i *Instance) call(ctx context.Context, name string, params ...uint64) (int, []byte, error) {
	if i.broken {
		return 0, nil, i.brokenErr(name, "instance is broken", nil)
	}
	fn := i.lastFn
	if name != i.lastCall {
		fn = i.fns[name]
		i.lastCall, i.lastFn = name, fn
	}
	if fn == nil {
		return 0, nil, &CallError{Plugin: i.m.name, Call: name, Status: -1, Msg: "not exported"}
	}
	// CallWithStack on the instance's own stack: Call would allocate the
	// parameters and results of every call.
	stack := i.stack[:max(len(params), 1)]
	copy(stack, params)
	if err := fn.CallWithStack(ctx, stack); err != nil {
		return 0, nil, i.brokenErr(name, i.describe(ctx, err), err)
	}
	st := int(uint32(stack[0]))
	if st == StatusUnchanged && i.abi >= 2 {
		return st, nil, nil // no result to read
	}
	out, err := i.result(ctx)
	if err != nil {
		return 0, nil, i.brokenErr(name, err.Error(), err)
	}
	return st, out, nil
}

func describeTrap(err error, l Limits) string {
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Sprintf("ran past its time budget of %s", l.CallTimeout)
		case sys.ExitCodeContextCanceled:
			return "cancelled"
		}
		return fmt.Sprintf("exited with code %d (a Go plugin exits 2 on panic; see its stderr in the host log)", ee.ExitCode())
	}
	// wazero's message is the trap and a wasm stack trace; keep the trap
	// and the innermost frame of the plugin's own code.
	lines := strings.Split(err.Error(), "\n")
	msg := "trapped: " + lines[0]
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, ".") && !strings.HasPrefix(l, ".runtime.") {
			msg += " in " + strings.TrimPrefix(l, ".")
			break
		}
	}
	if strings.Contains(err.Error(), ".runtime.throw") {
		msg += " (a Go runtime fatal error, e.g. out of memory; the plugin's stderr in the host log says which)"
	}
	return msg
}

// result reads the last call's result: a view of the plugin's memory.
func (i *Instance) result(ctx context.Context) ([]byte, error) {
	stack := i.stack[:1]
	if err := i.resultFn.CallWithStack(ctx, stack); err != nil {
		return nil, err
	}
	p, n := uint32(stack[0]>>32), uint32(stack[0])
	if n == 0 {
		return nil, nil
	}
	b, ok := i.mod.Memory().Read(p, n)
	if !ok {
		return nil, fmt.Errorf("returned a result at %#x+%d, outside its %d bytes of memory", p, n, i.mod.Memory().Size())
	}
	return b, nil
}

// input copies the concatenation of parts into the plugin's input buffer.
// The buffer logtk_alloc returned is kept and reused while inputs fit
// (docs/plugin-abi.md: it stays valid until the next logtk_alloc).
func (i *Instance) input(ctx context.Context, call string, parts ...[]byte) (uint64, uint64, error) {
	n := 0
	for _, b := range parts {
		n += len(b)
	}
	if i.inPtr == 0 || uint32(n) > i.inCap {
		r, err := i.fns["logtk_alloc"].Call(ctx, uint64(n))
		if err != nil {
			return 0, 0, i.brokenErr(call, "logtk_alloc: "+i.describe(ctx, err), err)
		}
		p := uint32(r[0])
		if p == 0 || uint64(p)+uint64(n) > uint64(i.mod.Memory().Size()) {
			if n == 0 && p == 0 {
				return 0, 0, nil
			}
			return 0, 0, i.brokenErr(call, fmt.Sprintf("logtk_alloc(%d) returned %#x, outside its memory", n, p), nil)
		}
		i.inPtr, i.inCap = p, uint32(n)
	}
	off := i.inPtr
	for _, b := range parts {
		if !i.mod.Memory().Write(off, b) {
			return 0, 0, i.brokenErr(call, fmt.Sprintf("the input buffer at %#x is outside the plugin's memory", i.inPtr), nil)
		}
		off += uint32(len(b))
	}
	return uint64(i.inPtr), uint64(n), nil
}

func (i *Instance) statusErr(call string, st int, msg []byte) error {
	if st == StatusOK {
		return nil
	}
	if st == StatusUnchanged && len(msg) == 0 {
		msg = []byte("answered 5 (unchanged), which only logtk_format of a plugin of ABI 2 may")
	}
	return &CallError{Plugin: i.m.name, Call: call, Status: st, Msg: string(msg)}
}

// Configure passes the plugin its configuration as JSON.
func (i *Instance) Configure(ctx context.Context, config []byte) error {
	ctx, cancel := i.opCtx(ctx)
	defer cancel()
	p, n, err := i.input(ctx, "logtk_configure", config)
	if err != nil {
		return err
	}
	st, res, err := i.call(ctx, "logtk_configure", p, n)
	if err != nil {
		return err
	}
	return i.statusErr("logtk_configure", st, res)
}

// Format formats an encoded record batch holding count records and
// returns the formatted batch. Output that is not exactly count
// well-formed entries marks the instance broken.
//
// When the plugin answers that its output is its input (StatusUnchanged:
// an identity format, as the protobuf formatter's with logtk's own
// schema), the result is batch itself, its capacity clipped to its
// length, instead of a copy; callers must then treat batch and the
// result as read-only. Otherwise the result is a fresh copy.
func (i *Instance) Format(ctx context.Context, batch []byte, count int) ([]byte, error) {
	return i.format(ctx, nil, batch, count, true)
}

// FormatAppend is Format appending the formatted batch to dst, always a
// copy.
func (i *Instance) FormatAppend(ctx context.Context, dst, batch []byte, count int) ([]byte, error) {
	return i.format(ctx, dst, batch, count, false)
}

func (i *Instance) format(ctx context.Context, dst, batch []byte, count int, mayAlias bool) ([]byte, error) {
	ctx, cancel := i.opCtx(ctx)
	defer cancel()
	p, n, err := i.input(ctx, "logtk_format", batch)
	if err != nil {
		return dst, err
	}
	st, res, err := i.call(ctx, "logtk_format", p, n)
	if err != nil {
		return dst, err
	}
	switch {
	case st == StatusUnchanged && i.abi >= 2:
		// The plugin says its output is its input: that is the host's
		// batch, whatever the plugin did to its copy.
		if mayAlias {
			return batch[:len(batch):len(batch)], nil
		}
		return append(dst, batch...), nil
	case st == StatusRetry || st == StatusInvalid:
		return dst, i.statusErr("logtk_format", st, res)
	case st != StatusOK:
		// Status 3, or one the ABI does not list: for a formatter the
		// same as a trap (docs/plugin-abi.md). One out of memory stays
		// so: the instance is not called again.
		ce := i.statusErr("logtk_format", st, res).(*CallError)
		i.broken, ce.Broken = true, true
		return dst, ce
	}
	out, got, ok := entries.AppendCount(dst, res)
	if !ok || got != count {
		return dst, i.brokenErr("logtk_format", fmt.Sprintf("returned garbage: %d well-formed entries (ok=%v) for %d records", got, ok, count), nil)
	}
	return out, nil
}

func (i *Instance) simple(ctx context.Context, call string) error {
	ctx, cancel := i.opCtx(ctx)
	defer cancel()
	st, res, err := i.call(ctx, call)
	if err != nil {
		return err
	}
	return i.statusErr(call, st, res)
}

// Open calls the transport's logtk_open.
func (i *Instance) Open(ctx context.Context) error { return i.simple(ctx, "logtk_open") }

// Flush calls the transport's logtk_flush.
func (i *Instance) Flush(ctx context.Context) error { return i.simple(ctx, "logtk_flush") }

// ClosePlugin calls the plugin's logtk_close (Close releases the instance).
func (i *Instance) ClosePlugin(ctx context.Context) error {
	return i.simple(ctx, "logtk_close")
}

// maxMarksBytes bounds what logtk_marks may return: marks of tens of
// thousands of worker instances.
const maxMarksBytes = 1 << 20

// KeepMarks asks a transport to keep marks (docs/plugin-abi.md, "Marks"):
// keeps reports whether it does, and marks are then the marks of
// everything it holds (internal/marks' encoding). From then on Write
// passes each batch's marks to it. A transport without logtk_marks, or
// answering 2 (invalid), does not keep marks: that is not an error.
func (i *Instance) KeepMarks(ctx context.Context) (held []byte, keeps bool, err error) {
	if i.fns["logtk_marks"] == nil {
		return nil, false, nil
	}
	ctx, cancel := i.opCtx(ctx)
	defer cancel()
	st, res, err := i.call(ctx, "logtk_marks")
	if err != nil {
		return nil, false, err
	}
	if st == StatusInvalid {
		return nil, false, nil
	}
	if err := i.statusErr("logtk_marks", st, res); err != nil {
		return nil, false, err
	}
	if len(res) > maxMarksBytes {
		return nil, false, i.brokenErr("logtk_marks", fmt.Sprintf("returned %d bytes of marks, more than %d", len(res), maxMarksBytes), nil)
	}
	if err := marks.Valid(res); err != nil {
		return nil, false, i.brokenErr("logtk_marks", "returned malformed marks: "+err.Error(), nil)
	}
	i.keepsMarks = true
	return slices.Clone(res), true, nil
}

// Write hands a formatted batch to a transport. id identifies the batch
// for the transport's idempotency (a network transport sends it as the
// batch id); the host gives every batch of a transport a distinct,
// increasing id and retries a batch with the same id. pending reports that
// the transport took the batch but has not delivered it yet (Poll will).
func (i *Instance) Write(ctx context.Context, id uint64, batch []byte) (pending bool, err error) {
	return i.WriteMarked(ctx, id, nil, batch)
}

// WriteMarked is Write with the batch's marks, passed to a transport
// that keeps marks (KeepMarks) and ignored otherwise.
func (i *Instance) WriteMarked(ctx context.Context, id uint64, batchMarks, batch []byte) (pending bool, err error) {
	ctx, cancel := i.opCtx(ctx)
	defer cancel()
	var head [2 * binary.MaxVarintLen64]byte
	h := protowire.AppendVarint(head[:0], id)
	if i.keepsMarks {
		h = protowire.AppendVarint(h, uint64(len(batchMarks)))
	} else {
		batchMarks = nil
	}
	p, n, err := i.input(ctx, "logtk_write", h, batchMarks, batch)
	if err != nil {
		return false, err
	}
	st, res, err := i.call(ctx, "logtk_write", p, n)
	if err != nil {
		return false, err
	}
	if st == StatusPending {
		return true, nil
	}
	return false, i.statusErr("logtk_write", st, res)
}

// Async reports whether the transport exports logtk_poll (it may then
// answer logtk_write with StatusPending).
func (i *Instance) Async() bool { return i.fns["logtk_poll"] != nil }

// Poll waits up to timeout for the transport to deliver pending batches
// and returns the ids it reports delivered.
func (i *Instance) Poll(ctx context.Context, timeout time.Duration) ([]uint64, error) {
	ctx, cancel := i.opCtx(ctx)
	defer cancel()
	st, res, err := i.call(ctx, "logtk_poll", uint64(timeout/time.Millisecond))
	if err != nil {
		return nil, err
	}
	if st != StatusOK {
		return nil, i.statusErr("logtk_poll", st, res)
	}
	var ids []uint64
	for len(res) > 0 {
		id, n := protowire.ConsumeVarint(res)
		if n < 0 {
			return nil, i.brokenErr("logtk_poll", "returned a malformed id list", nil)
		}
		ids = append(ids, id)
		res = res[n:]
	}
	return ids, nil
}

// lineLogger turns a plugin's stdout/stderr into log lines, keeping long
// lines whole up to 64 KiB.
type lineLogger struct {
	l     hclog.Logger
	level int32
	buf   []byte
}

func (w *lineLogger) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		logAt(w.l, w.level, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 {
		w.flush()
	}
	return len(p), nil
}

func (w *lineLogger) flush() {
	if len(w.buf) > 0 {
		logAt(w.l, w.level, string(w.buf))
		w.buf = w.buf[:0]
	}
}

var _ io.Writer = (*lineLogger)(nil)

func orWriter(w io.Writer, def io.Writer) io.Writer {
	if w != nil {
		return w
	}
	return def
}

// MemorySize returns the instance's linear memory size in bytes.
func (i *Instance) MemorySize() uint32 { return i.mod.Memory().Size() }
