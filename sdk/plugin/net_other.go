//go:build !wasip1

package plugin

// Outside Wasm there is no host to dial through.

func netDial(string) int32               { return -1 }
func netWrite(int32, []byte) int32       { return -4 }
func netRead(int32, []byte, int32) int32 { return -4 }
func netClose(int32) int32               { return -4 }
func netLastError() string               { return "network access exists only inside logtk-host" }
