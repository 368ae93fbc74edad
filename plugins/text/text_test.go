package text_test

import (
	"testing"

	"github.com/logtk/logtk/internal/goldentest"
	"github.com/logtk/logtk/plugins/text"
	"github.com/logtk/logtk/sdk/plugin"
)

func TestGolden(t *testing.T) {
	goldentest.Run(t, func() plugin.Formatter { return text.New() })
}

// Grouped keys (samples 0 and 5) and deferred multi-line values (2 and
// 5) cost an allocation each; flat records cost none.
func TestNoAllocs(t *testing.T) { goldentest.NoAllocs(t, text.New(), 0, 2, 5) }
