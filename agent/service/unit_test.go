//go:build !windows

package service

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var spec = Spec{
	Executable: "/usr/local/bin/kanade-agent",
	Args: []string{"service", "run", "--server", "tls://kanade.example.com:4222", "--credentials", "/var/lib/kanade/enrollment-bundle",
		"--data", "/var/lib/kanade", "--groups", "canary,wave1"},
	DataDir: "/var/lib/kanade",
}

func TestSystemdUnit(t *testing.T) {
	got, err := SystemdUnit(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := `# Written by "kanade-agent service install"; to change it, uninstall and
# install again with other flags.
[Unit]
Description=kanade agent
Wants=network-online.target
After=network-online.target
# Restart however often it fails: a PC without its agent is out of reach.
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=/usr/local/bin/kanade-agent service run --server tls://kanade.example.com:4222 --credentials /var/lib/kanade/enrollment-bundle --data /var/lib/kanade --groups canary,wave1
Restart=always
RestartSec=10
`
	if !strings.HasPrefix(got, want) {
		t.Errorf("unit starts (-want +got):\n%s", cmp.Diff(want, got[:min(len(got), len(want))]))
	}
	// Each setting the service relies on, once, in its section.
	sections := parseUnit(t, got)
	for _, kv := range []struct{ section, key, value string }{
		{"Unit", "After", "network-online.target"},
		{"Unit", "StartLimitIntervalSec", "0"},
		{"Service", "Restart", "always"},
		{"Service", "RestartSec", "10"},
		{"Service", "KillMode", "mixed"},
		{"Service", "TimeoutStopSec", "30"},
		{"Service", "LockPersonality", "yes"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if v := sections[kv.section][kv.key]; len(v) != 1 || v[0] != kv.value {
			t.Errorf("[%s] %s = %q, want %q", kv.section, kv.key, v, kv.value)
		}
	}
	// Options that would stop root scripts from doing their job.
	for _, key := range []string{"User", "ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "CapabilityBoundingSet",
		"RestrictNamespaces", "SystemCallFilter", "ProtectKernelModules", "ProtectKernelTunables", "UMask", "RestrictSUIDSGID"} {
		if v, ok := sections["Service"][key]; ok {
			t.Errorf("[Service] %s = %q: it would bind the scripts the agent runs as root", key, v)
		}
	}
}

// parseUnit reads a unit file into section → key → values.
func parseUnit(t *testing.T, unit string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("unit line %q is not key=value in a section", line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

func TestSystemdQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/var/lib/kanade", "/var/lib/kanade"},
		{"canary,wave1", "canary,wave1"},
		{"/opt/my agent/kanade-agent", `"/opt/my agent/kanade-agent"`},
		{"100%", "100%%"},
		{"$HOME", "$$HOME"},
		{`a"b`, `"a\"b"`},
		{`C:\x`, `"C:\\x"`},
		{"", `""`},
		{";", `";"`},
	}
	for _, tt := range tests {
		if got := systemdQuote(tt.in); got != tt.want {
			t.Errorf("systemdQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestLaunchdPlist(t *testing.T) {
	s := spec
	s.Executable = "/usr/local/bin/kanade-agent"
	s.Args = append(append([]string(nil), spec.Args...), "--pc-id", "mac<&>1")
	got, err := LaunchdPlist(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>kanade-agent</string>
	<key>ProgramArguments</key>
	<array>
		<string>/usr/local/bin/kanade-agent</string>
		<string>service</string>
		<string>run</string>
		<string>--server</string>
		<string>tls://kanade.example.com:4222</string>
		<string>--credentials</string>
		<string>/var/lib/kanade/enrollment-bundle</string>
		<string>--data</string>
		<string>/var/lib/kanade</string>
		<string>--groups</string>
		<string>canary,wave1</string>
		<string>--pc-id</string>
		<string>mac&lt;&amp;&gt;1</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ThrottleInterval</key>
	<integer>10</integer>
	<key>ExitTimeOut</key>
	<integer>30</integer>
	<key>ProcessType</key>
	<string>Standard</string>
	<key>StandardOutPath</key>
	<string>/var/lib/kanade/logs/stderr.log</string>
	<key>StandardErrorPath</key>
	<string>/var/lib/kanade/logs/stderr.log</string>
</dict>
</plist>
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plist (-want +got):\n%s", diff)
	}
	// It is well-formed XML, and the arguments read back unchanged.
	var args []string
	d := xml.NewDecoder(strings.NewReader(got))
	inArray := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the plist is not well-formed XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "array" {
				inArray = true
			}
			if tok.Name.Local == "string" && inArray {
				var v string
				if err := d.DecodeElement(&v, &tok); err != nil {
					t.Fatal(err)
				}
				args = append(args, v)
			}
		case xml.EndElement:
			if tok.Name.Local == "array" {
				inArray = false
			}
		}
	}
	if diff := cmp.Diff(append([]string{s.Executable}, s.Args...), args); diff != "" {
		t.Errorf("ProgramArguments read back (-want +got):\n%s", diff)
	}
}
