package file

import (
	"os"

	"github.com/logtk/logtk/sdk/plugin"
)

// SetOpen replaces how the transport opens its file, for the test's
// lifetime, with one that wraps the real file.
func SetOpen(wrap func(f *os.File) AppendFile) (restore func()) {
	old := openAppend
	openAppend = func(path string) (appendFile, error) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		return wrap(f), nil
	}
	return func() { openAppend = old }
}

// AppendFile is appendFile, for the external tests.
type AppendFile = appendFile

// AppendMarksEntry and ParseMarksLog are the marks log's, for the
// external tests.
var AppendMarksEntry = appendMarksEntry

func ParseMarksLog(b []byte) (held []plugin.Mark, last *marksEntry, torn bool) {
	return parseMarksLog(b)
}
