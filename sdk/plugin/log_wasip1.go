//go:build wasip1

package plugin

import "unsafe"

//go:wasmimport logtk log
func logtkLog(level uint32, p unsafe.Pointer, n uint32)

func hostLog(level int32, msg string) {
	b := []byte(msg)
	if len(b) == 0 {
		return
	}
	logtkLog(uint32(level), unsafe.Pointer(&b[0]), uint32(len(b)))
}
