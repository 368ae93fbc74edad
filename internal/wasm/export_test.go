package wasm

import "github.com/logtk/logtk/internal/wasm/rootfs"

// SetABI makes an instance behave as if its plugin spoke ABI version v.
func SetABI(i *Instance, v uint32) { i.abi = v }

// RootfsMaxOpen is the files an instance may hold open.
const RootfsMaxOpen = rootfs.DefaultMaxOpen
