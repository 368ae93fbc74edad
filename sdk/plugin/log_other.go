//go:build !wasip1

package plugin

import (
	"fmt"
	"os"
)

func hostLog(level int32, msg string) { fmt.Fprintf(os.Stderr, "plugin log [%d]: %s\n", level, msg) }
