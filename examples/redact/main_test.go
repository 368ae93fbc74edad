package main

import (
	"strings"
	"testing"

	"github.com/logtk/logtk/sdk/plugin"
	"github.com/logtk/logtk/sdk/plugintest"
)

func TestConformance(t *testing.T) {
	plugintest.TestFormatter(t, plugintest.Build(t, "."), plugintest.Options{Config: `{"keys":["token","ip"]}`})
}

func TestRedacts(t *testing.T) {
	r := &Redact{}
	if err := r.Configure([]byte(`{"keys":["TOKEN","ip"],"replacement":"***"}`)); err != nil {
		t.Fatal(err)
	}
	var v plugin.Record
	v.Parse(plugintest.SampleRecords()[0])
	out, _ := r.Format(nil, &v)
	got := string(out)
	for _, want := range []string{"token=***", "client.ip=***", `path="/api/v1/users"`, "status=200", "client.geo.country=\"NZ\""} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if err := (&Redact{}).Configure([]byte(`{}`)); err == nil {
		t.Error("no keys accepted")
	}
}
