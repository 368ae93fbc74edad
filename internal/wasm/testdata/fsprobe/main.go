// A transport that tries to read and write files, to check the sandbox:
// config {"read": "/path", "write": "/path"}.
package main

import (
	"errors"
	"net"
	"os"

	"github.com/logtk/logtk/sdk/plugin"
)

type probe struct {
	cfg struct {
		Read  string `json:"read"`
		Write string `json:"write"`
		Dial  string `json:"dial"`
	}
}

func (p *probe) Configure(c []byte) error { return plugin.DecodeConfig(c, &p.cfg) }
func (p *probe) Open() error              { return nil }
func (p *probe) Flush() error             { return nil }
func (p *probe) Close() error             { return nil }

func (p *probe) Write(b *plugin.Batch) error {
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

func init() { plugin.RegisterTransport(plugin.Info{Name: "fsprobe", Version: "0"}, &probe{}) }

func main() {}
