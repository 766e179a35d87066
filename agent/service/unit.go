package service

import (
	"encoding/xml"
	"fmt"
	"path/filepath"
	"strings"
)

// SystemdUnit renders the systemd unit of the service.
func SystemdUnit(s Spec) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	words := []string{systemdQuote(s.Executable)}
	for _, a := range s.Args {
		words = append(words, systemdQuote(a))
	}
	return fmt.Sprintf(`# Written by "kanade-agent service install"; to change it, uninstall and
# install again with other flags.
[Unit]
Description=%s
Wants=network-online.target
After=network-online.target
# Restart however often it fails: a PC without its agent is out of reach.
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=%s
Restart=always
RestartSec=%d
# A stop sends SIGTERM to the agent only: it stops its running scripts and
# reports them itself. Whatever is left in the unit's control group once
# the agent has exited (after a crash, or a script that ignored the stop)
# then gets SIGKILL, so no script outlives its agent. KillMode=control-group
# would also signal the scripts directly, racing the agent's own report.
KillMode=mixed
TimeoutStopSec=%d
SyslogIdentifier=%s
# Hardening. Every sandboxing option of systemd also binds the scripts the
# agent runs, and those are admin tasks run as root: they install packages,
# edit /etc, manage units, load modules, set sysctls and the clock, use
# setuid tools and containers, and may leave files in /tmp for others. So
# ProtectSystem, ProtectHome, PrivateTmp, NoNewPrivileges,
# CapabilityBoundingSet, RestrictNamespaces, SystemCallFilter, ProtectKernel*,
# ProtectClock, ProtectHostname and UMask are left out on purpose; the
# options below take nothing an admin script needs. The agent's own files
# are guarded by its data directory's mode (0700) instead.
LockPersonality=yes
RestrictRealtime=yes

[Install]
WantedBy=multi-user.target
`, DisplayName, strings.Join(words, " "), int(RestartDelay.Seconds()), int(StopTimeout.Seconds()), Name), nil
}

// systemdQuote quotes one word of a systemd command line: specifiers (%)
// and variables ($) are escaped, and a word with blanks, quotes or
// backslashes is put in double quotes.
func systemdQuote(w string) string {
	w = strings.NewReplacer("%", "%%", "$", "$$").Replace(w)
	if w != "" && !strings.ContainsAny(w, " \t\"'\\;") {
		return w
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w) + `"`
}

// LaunchdPlist renders the launchd property list of the service (a
// daemon in /Library/LaunchDaemons, run as root).
func LaunchdPlist(s Spec) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	var args strings.Builder
	for _, a := range append([]string{s.Executable}, s.Args...) {
		fmt.Fprintf(&args, "\t\t<string>%s</string>\n", xmlEscape(a))
	}
	// The agent logs to DATA/logs/agent.log itself; launchd's copy of
	// stderr keeps what the agent could not log (a panic).
	stderr := xmlEscape(filepath.Join(s.DataDir, "logs", "stderr.log"))
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>%s</string>
	<key>ProgramArguments</key>
	<array>
%s	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>KeepAlive</key>
	<true/>
	<key>ThrottleInterval</key>
	<integer>%d</integer>
	<key>ExitTimeOut</key>
	<integer>%d</integer>
	<key>ProcessType</key>
	<string>Standard</string>
	<key>StandardOutPath</key>
	<string>%s</string>
	<key>StandardErrorPath</key>
	<string>%s</string>
</dict>
</plist>
`, Name, args.String(), int(RestartDelay.Seconds()), int(StopTimeout.Seconds()), stderr, stderr), nil
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
