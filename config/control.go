package config

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// ControlConfig is the control block: where a running host listens for
// logtk-host's client verbs (status, restart, stop, start, scale).
type ControlConfig struct {
	// Socket is the unix socket's path. Default: DefaultControlSocket of
	// the configuration file.
	Socket string
	// Group names a group whose members may use the socket besides the
	// host's own user and root; GID is resolved from it by Load.
	Group string
	GID   *uint32
}

// DefaultControlSocket is where a host run with the configuration file
// listens unless its control block says otherwise: in the user's runtime
// directory ($XDG_RUNTIME_DIR/logtk; /run/logtk for root; else
// logtk-<uid> in the temporary directory), named after the file and a
// digest of its absolute path, so that two configurations never share a
// socket and the client verbs find it from the same -config.
func DefaultControlSocket(configFile string) string {
	return runtimePath(configFile) + ".sock"
}

// DefaultRuntimeDir is the durable ingest's directory for a host run with
// the configuration file, unless the file names one (runtime_dir): beside
// its control socket, named as the socket is, with ".d" for ".sock".
func DefaultRuntimeDir(configFile string) string {
	return runtimePath(configFile) + ".d"
}

// runtimePath is the user's runtime directory and the configuration
// file's name with a digest of its absolute path.
func runtimePath(configFile string) string {
	abs, err := filepath.Abs(configFile)
	if err != nil {
		abs = configFile
	}
	sum := sha256.Sum256([]byte(abs))
	name := strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs)) + "-" + hex.EncodeToString(sum[:4])
	dir := os.Getenv("XDG_RUNTIME_DIR")
	switch {
	case dir != "":
		dir = filepath.Join(dir, "logtk")
	case os.Geteuid() == 0:
		dir = "/run/logtk"
	default:
		dir = filepath.Join(os.TempDir(), "logtk-"+strconv.Itoa(os.Geteuid()))
	}
	return filepath.Join(dir, name)
}

// maxSocketPath is the longest unix socket path Linux takes.
const maxSocketPath = 107

func controlAttrs(c *ControlConfig, baseDir string) attrs {
	group := func(a *hcl.Attribute) hcl.Diagnostics {
		if d := decodeExpr(a.Expr, &c.Group); d.HasErrors() {
			return d
		}
		g, err := user.LookupGroup(c.Group)
		if err != nil {
			return valueError(a, "Unknown group", "There is no group named %q on this machine.", c.Group)
		}
		gid, _ := strconv.ParseUint(g.Gid, 10, 32)
		gid32 := uint32(gid)
		c.GID = &gid32
		return nil
	}
	socket := func(a *hcl.Attribute) hcl.Diagnostics {
		if d := path(&c.Socket, baseDir)(a); d.HasErrors() {
			return d
		}
		if len(c.Socket) > maxSocketPath {
			return valueError(a, "Socket path too long", "socket = %q is %d bytes; a unix socket's path may have at most %d.", c.Socket, len(c.Socket), maxSocketPath)
		}
		return nil
	}
	return attrs{
		{"socket", false, socket},
		{"group", false, group},
	}
}

func decodeControl(blk *hcl.Block, baseDir string) (*ControlConfig, hcl.Diagnostics) {
	c := &ControlConfig{}
	content, diags := controlAttrs(c, baseDir).content(blk.Body)
	if content == nil {
		return nil, diags
	}
	return c, diags
}

// ControlSocket returns the control socket of the configuration file
// without loading the rest of it (the client verbs need nothing else, and
// must work while a plugin the file names is being rebuilt): its control
// block's socket, or DefaultControlSocket.
func ControlSocket(configFile string) (string, error) {
	src, err := readConfigFile(configFile)
	if err != nil {
		return "", err
	}
	f, diags := hclparse.NewParser().ParseHCL(src, configFile)
	if diags.HasErrors() {
		return "", diags
	}
	content, _, diags := f.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "control"}}})
	if diags.HasErrors() {
		return "", diags
	}
	baseDir, err := filepath.Abs(filepath.Dir(configFile))
	if err != nil {
		return "", err
	}
	for _, blk := range content.Blocks {
		c := &ControlConfig{}
		content, _, diags := blk.Body.PartialContent(controlAttrs(c, baseDir)[:1].schema())
		if diags.HasErrors() {
			return "", diags
		}
		if diags := controlAttrs(c, baseDir)[:1].decode(content); diags.HasErrors() {
			return "", diags
		}
		if c.Socket != "" {
			return c.Socket, nil
		}
	}
	return DefaultControlSocket(configFile), nil
}
