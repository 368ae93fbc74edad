//go:build !unix

package capture

import "io"

// readable reports false: no check without poll(2).
func readable(r io.Reader) bool { return false }
