// A plugin written against the ABI without the SDK, which lies in the way
// its name says (LIE at build time is not possible for Wasm, so the lie is
// chosen by the config JSON: {"lie": "..."}).
package main

import (
	"strings"
	"unsafe"
)

var (
	in   = make([]byte, 1<<16)
	out  []byte
	lie  string
	info = []byte(`{"name":"raw","version":"0","kind":"format","abi":2,"config":[{"name":"lie","type":"string"}]}`)
)

func ptr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

//go:wasmexport logtk_abi_version
func abiVersion() uint32 {
	if lie == "abi" {
		return 99
	}
	return 2
}

//go:wasmexport logtk_alloc
func alloc(n uint32) uint32 {
	if lie == "alloc" {
		return 0xfffffff0
	}
	if int(n) > len(in) {
		in = make([]byte, n)
	}
	return ptr(in)
}

var (
	last       []byte
	formatting bool
	tired      int // batches formatted, for the lie "tired"
)

//go:wasmexport logtk_result
func result() uint64 {
	if lie == "result" && formatting {
		return uint64(0xffffff00)<<32 | 4096
	}
	return uint64(ptr(last))<<32 | uint64(len(last))
}

//go:wasmexport logtk_info
func logtkInfo() uint32 { last = info; return 0 }

//go:wasmexport logtk_configure
func configure(p, n uint32) uint32 {
	s := string(in[:n])
	if i := strings.Index(s, `"lie":"`); i >= 0 {
		lie = strings.TrimSuffix(s[i+7:], `"}`)
	}
	switch lie {
	case "configure":
		panic("a trap in logtk_configure")
	case "configure 2":
		last = []byte("lie: not a lie I know")
		return 2
	case "configure 3":
		last = []byte("out of memory")
		return 3
	case "configure 9":
		last = []byte("a status of my own")
		return 9
	}
	last = nil
	return 0
}

//go:wasmexport logtk_format
func format(p, n uint32) uint32 {
	formatting = true
	switch lie {
	case "count":
		last = []byte{3, 'a', 'b', 'c'} // one entry, whatever the input
	case "length":
		last = []byte{100, 'x'} // an entry running past the result
	case "tamper":
		in[n-1] ^= 0x20 // in place: the input handed back, changed
		last = in[:n]
	case "tamper length":
		in[0] = 0x7f // in place: the first entry now runs past the end
		last = in[:n]
	case "tired": // an instance that runs short after two batches
		if tired++; tired > 2 {
			last = []byte("out of memory")
			return 3
		}
		last = in[:n]
	case "unchanged":
		in[n-1] ^= 0x20 // what the plugin does to its copy does not matter
		last = nil
		return 5
	default:
		last = in[:n] // echo: valid, one entry per record
	}
	return 0
}

func main() {}
