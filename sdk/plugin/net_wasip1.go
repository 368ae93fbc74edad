//go:build wasip1

package plugin

import "unsafe"

//go:wasmimport logtk net_dial
func logtkNetDial(p unsafe.Pointer, n uint32) int32

//go:wasmimport logtk net_write
func logtkNetWrite(h int32, p unsafe.Pointer, n uint32) int32

//go:wasmimport logtk net_read
func logtkNetRead(h int32, p unsafe.Pointer, n uint32, timeoutMillis int32) int32

//go:wasmimport logtk net_close
func logtkNetClose(h int32) int32

//go:wasmimport logtk net_error
func logtkNetError(p unsafe.Pointer, n uint32) int32

func netDial(name string) int32 {
	b := []byte(name)
	if len(b) == 0 {
		return -1
	}
	return logtkNetDial(unsafe.Pointer(&b[0]), uint32(len(b)))
}

func netWrite(h int32, b []byte) int32 {
	if len(b) == 0 {
		return 0
	}
	return logtkNetWrite(h, unsafe.Pointer(&b[0]), uint32(len(b)))
}

func netRead(h int32, b []byte, ms int32) int32 {
	if len(b) == 0 {
		return 0
	}
	return logtkNetRead(h, unsafe.Pointer(&b[0]), uint32(len(b)), ms)
}

func netClose(h int32) int32 { return logtkNetClose(h) }

func netLastError() string {
	var buf [512]byte
	n := logtkNetError(unsafe.Pointer(&buf[0]), uint32(len(buf)))
	if n <= 0 {
		return ""
	}
	return string(buf[:n])
}
