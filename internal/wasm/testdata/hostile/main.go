// A deliberately broken format plugin: its behaviour per record is chosen by
// the record's message. Used to check that the host contains it.
package main

import (
	"fmt"
	"os"

	"github.com/logtk/logtk/sdk/plugin"
)

type hostile struct {
	leak    [][]byte
	retried int // retries this instance has answered for "flaky"
}

var sink int

func (h *hostile) Format(dst []byte, r *plugin.Record) ([]byte, error) {
	switch string(r.Message) {
	case "trap":
		var m map[string]int
		m["nil map"] = 1 // panics: the Go runtime exits the module
	case "announced loop":
		fmt.Fprintln(os.Stderr, "looping")
		for {
			sink++
		}
	case "loop":
		for {
			sink++
		}
	case "leak":
		for {
			h.leak = append(h.leak, make([]byte, 1<<20)) // until memory runs out
		}
	case "error":
		return nil, errString("this record cannot be formatted")
	case "retry":
		return nil, plugin.Retry(errString("try again later"))
	case "flaky": // a retry, twice in an instance's life
		if h.retried++; h.retried <= 2 {
			return nil, plugin.Retry(errString("not now"))
		}
	case "log":
		plugin.Log(13, "hostile logs through logtk.log")
		fmt.Fprintln(os.Stderr, "hostile writes to stderr")
	}
	return append(append(dst, r.Message...), '\n'), nil
}

type errString string

func (e errString) Error() string { return string(e) }

func init() {
	plugin.RegisterFormatter(plugin.Info{Name: "hostile", Version: "0.0.1"}, &hostile{})
}

func main() {}
