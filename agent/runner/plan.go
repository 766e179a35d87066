package runner

import (
	"fmt"
	"os"
	"strings"

	"github.com/kanadehq/kanade/agent/wire"
)

// utf8BOM starts every PowerShell script file: Windows PowerShell 5.1 reads
// a .ps1 without it in the ANSI code page.
const utf8BOM = "\xEF\xBB\xBF"

// cmdPreamble is the first line of every .cmd file: it switches the child's
// (hidden) console to UTF-8, so cmd reads the rest of the file — which comes
// from the server as UTF-8 — correctly, and its built-ins print UTF-8.
const cmdPreamble = "@chcp 65001 >nul 2>&1\r\n"

// host is what planning needs to know about a machine. Run uses localHost;
// tests describe other machines, Windows included.
type host struct {
	goos       string                            // runtime.GOOS
	systemRoot string                            // %SystemRoot% (Windows), e.g. C:\Windows
	lookPath   func(file string) (string, error) // exec.LookPath
	// stub returns a reason when prog is present but cannot really run
	// scripts (the PowerShell stub of Wine), else "".
	stub func(shell, prog string) string
}

// plan is how one script runs on one machine, worked out before any file is
// written.
type plan struct {
	goos    string
	shell   string
	prog    string // absolute path of the interpreter
	ext     string // extension of the script file
	content []byte // the script file
	// launch is set for PowerShell on Windows: the command runs a second
	// .ps1 that forces UTF-8 output, then calls the script.
	launch bool
}

// refusal says why a script cannot run on a machine, and how its run
// ends: skipped for a shell that does not exist on the machine's OS (a
// script meant for other systems, or a shell this agent does not know),
// failed for one that belongs there but is missing or is a stub that would
// fake a success.
type refusal struct {
	state  wire.State // wire.StateSkipped or wire.StateFailed; "" when the script can run
	reason string
}

func skipped(reason string) refusal { return refusal{wire.StateSkipped, reason} }

// resolve finds the interpreter for shell on h, or says why it cannot run.
func resolve(h host, shell string) (prog string, no refusal) {
	windows := h.goos == "windows"
	var candidates []string
	switch shell {
	case wire.ShellSh:
		if windows {
			return "", skipped("shell sh is not available on windows")
		}
		candidates = []string{"/bin/sh"}
	case wire.ShellCmd:
		if !windows {
			return "", skipped("shell cmd is not available on " + h.goos)
		}
		candidates = systemCandidates(h, `\System32\cmd.exe`, "cmd.exe")
	case wire.ShellPowerShell:
		if !windows {
			return "", skipped("shell powershell is not available on " + h.goos + " (use pwsh)")
		}
		candidates = systemCandidates(h, `\System32\WindowsPowerShell\v1.0\powershell.exe`, "powershell.exe")
	case wire.ShellPwsh:
		if windows {
			candidates = []string{"pwsh.exe"}
		} else {
			candidates = []string{"pwsh"}
		}
	default:
		return "", skipped(fmt.Sprintf("unknown shell %q", shell))
	}
	for _, c := range candidates {
		p, err := h.lookPath(c)
		if err != nil {
			continue
		}
		if h.stub != nil {
			if why := h.stub(shell, p); why != "" {
				return "", refusal{wire.StateFailed, why}
			}
		}
		return p, refusal{}
	}
	return "", refusal{wire.StateFailed, shell + " is not installed"}
}

// systemCandidates lists a Windows system program by absolute path first
// (so that a directory early in PATH cannot shadow it), then by name.
func systemCandidates(h host, underRoot, name string) []string {
	if h.systemRoot == "" {
		return []string{name}
	}
	return []string{strings.TrimRight(h.systemRoot, `\`) + underRoot, name}
}

// makePlan works out how to run script with shell on h, or says why the
// script cannot run there.
func makePlan(h host, shell, script string) (p plan, no refusal) {
	prog, no := resolve(h, shell)
	if no.state != "" {
		return plan{}, no
	}
	p = plan{goos: h.goos, shell: shell, prog: prog}
	switch shell {
	case wire.ShellSh:
		p.ext = ".sh"
		// sh reads a CR as part of the line ("done\r" is no keyword); a
		// browser sends every textarea's lines with CRLF.
		p.content = []byte(strings.ReplaceAll(script, "\r\n", "\n"))
	case wire.ShellCmd:
		p.ext = ".cmd"
		p.content = []byte(cmdPreamble + crlf(script))
	case wire.ShellPowerShell, wire.ShellPwsh:
		p.ext = ".ps1"
		p.content = []byte(utf8BOM + script)
		p.launch = h.goos == "windows"
	}
	return p, refusal{}
}

// crlf gives every line of s a CRLF ending: cmd misreads labels and
// jumps in LF-only batch files.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// argv is the command that runs file, the file write returned.
func (p plan) argv(file string) []string {
	switch {
	case p.shell == wire.ShellSh:
		return []string{p.prog, file}
	case p.shell == wire.ShellCmd:
		return []string{p.prog, "/D", "/S", "/C", file}
	case p.goos == "windows": // powershell or pwsh
		return []string{p.prog, "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", file}
	default: // pwsh off Windows
		return []string{p.prog, "-NoProfile", "-NonInteractive", "-File", file}
	}
}

// cmdLine is the raw Windows command line for file, or "" when the usual
// argument quoting is right. cmd.exe does not parse its command line like
// other programs: with /S it drops the first and the last quote after /C
// and runs the rest, so the file goes in two pairs of quotes.
func (p plan) cmdLine(file string) string {
	if p.goos != "windows" || p.shell != wire.ShellCmd {
		return ""
	}
	return `"` + p.prog + `" /D /S /C ""` + file + `""`
}

// launcher is the .ps1 that PowerShell runs on Windows: it deletes marker
// (the proof that the interpreter really ran it: a stub exits without
// doing so), forces UTF-8 output whatever the console code page, calls the
// script and exits with its exit code. A script that ends without exit
// reports the exit code of the last native program it ran, or 0.
func launcher(script, marker string) []byte {
	var b strings.Builder
	b.WriteString(utf8BOM)
	b.WriteString("[System.IO.File]::Delete(" + psQuote(marker) + ")\r\n")
	b.WriteString("try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { }\r\n")
	b.WriteString("$OutputEncoding = New-Object System.Text.UTF8Encoding $false\r\n")
	b.WriteString("$global:LASTEXITCODE = 0\r\n")
	b.WriteString("& " + psQuote(script) + "\r\n")
	b.WriteString("exit $global:LASTEXITCODE\r\n")
	return []byte(b.String())
}

// psQuote quotes s as a PowerShell single-quoted string. PowerShell treats
// the typographic single quotes as quotes too; each is escaped by doubling.
func psQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\u2018', '\u2019', '\u201A', '\u201B':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// written is what plan.write created.
type written struct {
	run string // the file to run
	// marker, when not "", is an empty file the launcher deletes first:
	// if it is still there after a run that exited, the interpreter never
	// ran the script.
	marker string
	files  []string // every file created, which the caller removes
}

// write creates dir if needed (0700) and writes the script file (0600,
// unique name) and, for PowerShell on Windows, its launcher and marker.
// The caller removes w.files, also when err is not nil.
func (p plan) write(dir string) (w written, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return w, fmt.Errorf("create script directory: %w", err)
	}
	add := func(name string, err error) (string, error) {
		if name != "" {
			w.files = append(w.files, name)
		}
		return name, err
	}
	script, err := add(writeTemp(dir, "kanade-*"+p.ext, p.content))
	if err != nil {
		return w, err
	}
	if !p.launch {
		w.run = script
		return w, nil
	}
	marker, err := add(writeTemp(dir, "kanade-*.pending", nil))
	if err != nil {
		return w, err
	}
	launch, err := add(writeTemp(dir, "kanade-*-launch.ps1", launcher(script, marker)))
	if err != nil {
		return w, err
	}
	w.run, w.marker = launch, marker
	return w, nil
}

// writeTemp writes content to a new file (0600) in dir named after pattern
// (see os.CreateTemp). name is set as soon as the file exists.
func writeTemp(dir, pattern string, content []byte) (name string, err error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("create script file: %w", err)
	}
	name = f.Name()
	if _, err := f.Write(content); err != nil {
		f.Close()
		return name, fmt.Errorf("write script file: %w", err)
	}
	if err := f.Close(); err != nil {
		return name, fmt.Errorf("write script file: %w", err)
	}
	return name, nil
}
