// Package builtin holds the built-in plugins that are compiled into
// logtk-host (the formatters, the console and file transports): small Wasm
// modules built from C (plugins/c) with a pinned
// clang and committed, so that a copied binary, or one made by go
// install, runs them with no file beside it. A configuration names them
// as it names every built-in ("json", "console"); plugin_dir, or
// LOGTK_PLUGIN_DIR, holding a module of that name still overrides the
// embedded one.
//
// The Go packages of the same names (plugins/json, plugins/text,
// plugins/protobuf, plugins/console, plugins/file) are the reference:
// each embedded module writes exactly the bytes its Go plugin writes,
// which the differential tests and fuzz targets of this package (and of
// plugins/file, for the file transport) check.
package builtin

import (
	"embed"
	"slices"
	"strings"
)

//go:embed json.wasm text.wasm protobuf.wasm console.wasm file.wasm network.wasm
var modules embed.FS

// names are the embedded plugins.
var names = []string{"json", "text", "protobuf", "console", "file", "network"}

// Prefix begins the path a configuration records for an embedded plugin
// ("builtin:json"): not a file, and never taken for one.
const Prefix = "builtin:"

// Names returns the names of the embedded plugins.
func Names() []string { return slices.Clone(names) }

// Module returns the embedded plugin called name, and whether there is
// one.
func Module(name string) ([]byte, bool) {
	if !slices.Contains(names, name) {
		return nil, false
	}
	b, err := modules.ReadFile(name + ".wasm")
	return b, err == nil
}

// Path returns the path a configuration records for the embedded plugin
// name: Prefix and the name.
func Path(name string) string { return Prefix + name }

// Read returns the module a path from Path names, and whether path is
// one.
func Read(path string) ([]byte, bool) {
	name, ok := strings.CutPrefix(path, Prefix)
	if !ok {
		return nil, false
	}
	return Module(name)
}
