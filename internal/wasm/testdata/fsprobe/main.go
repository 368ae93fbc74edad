// A transport that tries to read and write files, to check the sandbox:
// config {"read": "/path", "write": "/path"}, or {"ops": [[op, args...]]}:
// each op is run in turn and Write fails with a report, one line per op,
// "ok <result>" or "err <error>".
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/logtk/logtk/sdk/plugin"
)

type probe struct {
	cfg struct {
		Read  string     `json:"read"`
		Write string     `json:"write"`
		Dial  string     `json:"dial"`
		Ops   [][]string `json:"ops"`
	}
	held []*os.File // files the "hold" op keeps open
}

func (p *probe) Configure(c []byte) error { return plugin.DecodeConfig(c, &p.cfg) }
func (p *probe) Open() error              { return nil }
func (p *probe) Flush() error             { return nil }
func (p *probe) Close() error             { return nil }

func (p *probe) Write(b *plugin.Batch) error {
	if len(p.cfg.Ops) > 0 {
		var rep strings.Builder
		for _, op := range p.cfg.Ops {
			res, err := p.run(op)
			if err != nil {
				fmt.Fprintf(&rep, "err %v\n", err)
			} else {
				fmt.Fprintf(&rep, "ok %s\n", res)
			}
		}
		return errors.New(rep.String())
	}
	if p.cfg.Dial != "" {
		c, err := net.Dial("tcp", p.cfg.Dial)
		if err != nil {
			return errors.New("dial denied: " + err.Error())
		}
		c.Close()
	}
	if p.cfg.Read != "" {
		if _, err := os.ReadFile(p.cfg.Read); err != nil {
			return errors.New("read denied: " + err.Error())
		}
	}
	if p.cfg.Write != "" {
		f, err := os.OpenFile(p.cfg.Write, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return errors.New("write denied: " + err.Error())
		}
		defer f.Close()
		var werr error
		b.Each(func(e []byte) bool { _, werr = f.Write(e); return werr == nil })
		return werr
	}
	return nil
}

// run performs one op of the script.
func (p *probe) run(op []string) (string, error) {
	switch op[0] {
	case "read":
		b, err := os.ReadFile(op[1])
		return string(b), err
	case "write": // create or truncate
		return "", os.WriteFile(op[1], []byte(op[2]), 0o600)
	case "append":
		f, err := os.OpenFile(op[1], os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return "", err
		}
		defer f.Close()
		_, err = f.WriteString(op[2])
		return "", err
	case "symlink":
		return "", os.Symlink(op[1], op[2])
	case "link":
		return "", os.Link(op[1], op[2])
	case "rename":
		return "", os.Rename(op[1], op[2])
	case "mkdir":
		return "", os.Mkdir(op[1], 0o700)
	case "remove":
		return "", os.Remove(op[1])
	case "readlink":
		return os.Readlink(op[1])
	case "list":
		es, err := os.ReadDir(op[1])
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return strings.Join(names, ","), err
	case "stat":
		fi, err := os.Stat(op[1])
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d", fi.Size()), nil
	case "hold": // open as many files as the sandbox lets it, keep them
		for i := 0; ; i++ {
			f, err := os.OpenFile(fmt.Sprintf("%s/%d", op[1], i), os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Sprint(i), err
			}
			p.held = append(p.held, f)
		}
	case "netread": // dial endpoint op[1], read once waiting op[2]
		d, err := time.ParseDuration(op[2])
		if err != nil {
			return "", err
		}
		c, err := plugin.Dial(op[1])
		if err != nil {
			return "", err
		}
		defer c.Close()
		var buf [64]byte
		n, err := c.Read(buf[:], d)
		if errors.Is(err, plugin.ErrTimeout) {
			return "timeout", nil
		}
		return string(buf[:n]), err
	case "release":
		for _, f := range p.held {
			f.Close()
		}
		p.held = nil
		return "", nil
	}
	return "", errors.New("unknown op " + op[0])
}

func init() { plugin.RegisterTransport(plugin.Info{Name: "fsprobe", Version: "0"}, &probe{}) }

func main() {}
