// Package dist holds the systemd units; its test checks them.
package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitsVerify: systemd-analyze verify accepts both units (with
// ExecStart pointed at an executable that exists here).
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "logtk-host")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, unit := range []string{"logtk-host.service", "logtk-server.service"} {
		b, err := os.ReadFile(unit)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"Type=notify", "Restart=on-failure", "KillMode=mixed"} {
			if !strings.Contains(string(b), want+"\n") {
				t.Errorf("%s lacks %s", unit, want)
			}
		}
		s := strings.ReplaceAll(string(b), "/usr/local/bin/logtk-host", bin)
		s = strings.ReplaceAll(s, "WorkingDirectory=/etc/logtk", "WorkingDirectory="+dir)
		path := filepath.Join(dir, unit)
		os.WriteFile(path, []byte(s), 0o644)
		cmd := exec.Command(analyze, "verify", path)
		cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=warning")
		out, err := cmd.CombinedOutput()
		// verify complains about units it loads besides ours (the
		// machine's own); only lines naming ours count.
		var ours []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, unit) {
				ours = append(ours, l)
			}
		}
		if len(ours) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", unit, err, strings.Join(ours, "\n"))
		}
	}
}
