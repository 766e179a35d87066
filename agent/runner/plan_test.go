package runner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/agent/wire"
)

// fakeHost is a machine with the given OS on which exactly the files in
// installed can be found by lookPath (names map to where they are found).
func fakeHost(goos, systemRoot string, installed map[string]string) host {
	return host{
		goos:       goos,
		systemRoot: systemRoot,
		lookPath: func(file string) (string, error) {
			if p, ok := installed[file]; ok {
				return p, nil
			}
			return "", errors.New("not found")
		},
	}
}

var (
	linuxHost = fakeHost("linux", "", map[string]string{
		"/bin/sh": "/bin/sh",
		"pwsh":    "/usr/bin/pwsh",
	})
	bareLinuxHost = fakeHost("linux", "", nil)
	windowsHost   = fakeHost("windows", `C:\Windows`, map[string]string{
		`C:\Windows\System32\cmd.exe`:                               `C:\Windows\System32\cmd.exe`,
		`C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`: `C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`,
		"cmd.exe":        `C:\evil\cmd.exe`,
		"powershell.exe": `C:\evil\powershell.exe`,
		"pwsh.exe":       `C:\Program Files\PowerShell\7\pwsh.exe`,
	})
	// noRootWindowsHost has no %SystemRoot%: programs come from PATH.
	noRootWindowsHost = fakeHost("windows", "", map[string]string{
		"cmd.exe":        `C:\Windows\system32\cmd.exe`,
		"powershell.exe": `C:\Windows\system32\WindowsPowerShell\v1.0\powershell.exe`,
	})
)

func TestMakePlan(t *testing.T) {
	t.Parallel()
	const bom = "\xEF\xBB\xBF"
	tests := []struct {
		name        string
		h           host
		shell       string
		script      string
		file        string // the file that write returned
		wantArgv    []string
		wantCmdLine string
		wantExt     string
		wantContent string
		wantLaunch  bool
		wantState   wire.State // how a run that cannot start ends
		wantReason  string
	}{
		{
			name: "linux sh", h: linuxHost, shell: wire.ShellSh, script: "echo hi\n", file: "/var/lib/kanade/kanade-1.sh",
			wantArgv: []string{"/bin/sh", "/var/lib/kanade/kanade-1.sh"},
			wantExt:  ".sh", wantContent: "echo hi\n",
		},
		{
			name: "linux sh from a browser's textarea", h: linuxHost, shell: wire.ShellSh, script: "for i in 1 2; do\r\n  echo $i\r\ndone\r\n", file: "/var/lib/kanade/kanade-1.sh",
			wantArgv: []string{"/bin/sh", "/var/lib/kanade/kanade-1.sh"},
			wantExt:  ".sh", wantContent: "for i in 1 2; do\n  echo $i\ndone\n",
		},
		{
			name: "linux pwsh", h: linuxHost, shell: wire.ShellPwsh, script: "Write-Output hi", file: "/tmp/kanade-2.ps1",
			wantArgv: []string{"/usr/bin/pwsh", "-NoProfile", "-NonInteractive", "-File", "/tmp/kanade-2.ps1"},
			wantExt:  ".ps1", wantContent: bom + "Write-Output hi",
		},
		{name: "linux pwsh missing", h: bareLinuxHost, shell: wire.ShellPwsh, wantState: wire.StateFailed, wantReason: "pwsh is not installed"},
		{name: "linux sh missing", h: bareLinuxHost, shell: wire.ShellSh, wantState: wire.StateFailed, wantReason: "sh is not installed"},
		{name: "linux cmd", h: linuxHost, shell: wire.ShellCmd, wantState: wire.StateSkipped, wantReason: "shell cmd is not available on linux"},
		{name: "darwin cmd", h: fakeHost("darwin", "", nil), shell: wire.ShellCmd, wantState: wire.StateSkipped, wantReason: "shell cmd is not available on darwin"},
		{name: "linux powershell", h: linuxHost, shell: wire.ShellPowerShell, wantState: wire.StateSkipped, wantReason: "shell powershell is not available on linux (use pwsh)"},
		{name: "unknown shell", h: linuxHost, shell: "zsh", wantState: wire.StateSkipped, wantReason: `unknown shell "zsh"`},
		{name: "windows sh", h: windowsHost, shell: wire.ShellSh, wantState: wire.StateSkipped, wantReason: "shell sh is not available on windows"},
		{
			name: "windows cmd", h: windowsHost, shell: wire.ShellCmd, script: "@echo off\necho hi\r\nexit /b 3", file: `C:\ProgramData\Kanade\run\kanade-3.cmd`,
			wantArgv:    []string{`C:\Windows\System32\cmd.exe`, "/D", "/S", "/C", `C:\ProgramData\Kanade\run\kanade-3.cmd`},
			wantCmdLine: `"C:\Windows\System32\cmd.exe" /D /S /C ""C:\ProgramData\Kanade\run\kanade-3.cmd""`,
			wantExt:     ".cmd", wantContent: "@chcp 65001 >nul 2>&1\r\n@echo off\r\necho hi\r\nexit /b 3",
		},
		{
			name: "windows cmd, path with spaces and parentheses", h: windowsHost, shell: wire.ShellCmd, script: "ver", file: `C:\Program Files (x86)\K & K\kanade-4.cmd`,
			wantArgv:    []string{`C:\Windows\System32\cmd.exe`, "/D", "/S", "/C", `C:\Program Files (x86)\K & K\kanade-4.cmd`},
			wantCmdLine: `"C:\Windows\System32\cmd.exe" /D /S /C ""C:\Program Files (x86)\K & K\kanade-4.cmd""`,
			wantExt:     ".cmd", wantContent: "@chcp 65001 >nul 2>&1\r\nver",
		},
		{
			name: "windows cmd from PATH without SystemRoot", h: noRootWindowsHost, shell: wire.ShellCmd, script: "ver", file: `C:\t\kanade-5.cmd`,
			wantArgv:    []string{`C:\Windows\system32\cmd.exe`, "/D", "/S", "/C", `C:\t\kanade-5.cmd`},
			wantCmdLine: `"C:\Windows\system32\cmd.exe" /D /S /C ""C:\t\kanade-5.cmd""`,
			wantExt:     ".cmd", wantContent: "@chcp 65001 >nul 2>&1\r\nver",
		},
		{
			name: "windows powershell", h: windowsHost, shell: wire.ShellPowerShell, script: "Write-Output 'こんにちは'", file: `C:\t\kanade-6-launch.ps1`,
			wantArgv: []string{`C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`, "-NoProfile", "-NonInteractive",
				"-ExecutionPolicy", "Bypass", "-File", `C:\t\kanade-6-launch.ps1`},
			wantExt: ".ps1", wantContent: bom + "Write-Output 'こんにちは'", wantLaunch: true,
		},
		{
			name: "windows pwsh", h: windowsHost, shell: wire.ShellPwsh, script: "exit 1", file: `C:\t\kanade-7-launch.ps1`,
			wantArgv: []string{`C:\Program Files\PowerShell\7\pwsh.exe`, "-NoProfile", "-NonInteractive",
				"-ExecutionPolicy", "Bypass", "-File", `C:\t\kanade-7-launch.ps1`},
			wantExt: ".ps1", wantContent: bom + "exit 1", wantLaunch: true,
		},
		{name: "windows pwsh missing", h: noRootWindowsHost, shell: wire.ShellPwsh, wantState: wire.StateFailed, wantReason: "pwsh is not installed"},
		{name: "windows powershell missing", h: fakeHost("windows", `C:\Windows`, nil), shell: wire.ShellPowerShell, wantState: wire.StateFailed, wantReason: "powershell is not installed"},
		{
			name: "windows powershell stub", shell: wire.ShellPowerShell,
			h: func() host {
				h := windowsHost
				h.stub = func(shell, prog string) string { return "stub: " + shell + " at " + prog }
				return h
			}(),
			wantState: wire.StateFailed, wantReason: `stub: powershell at C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, no := makePlan(tt.h, tt.shell, tt.script)
			if want := (refusal{tt.wantState, tt.wantReason}); no != want {
				t.Fatalf("makePlan(%s, %q) refusal = %+v, want %+v", tt.h.goos, tt.shell, no, want)
			}
			if no.state != "" {
				return
			}
			if diff := cmp.Diff(tt.wantArgv, p.argv(tt.file)); diff != "" {
				t.Errorf("argv mismatch (-want +got):\n%s", diff)
			}
			if got := p.cmdLine(tt.file); got != tt.wantCmdLine {
				t.Errorf("cmdLine = %s, want %s", got, tt.wantCmdLine)
			}
			if p.ext != tt.wantExt || string(p.content) != tt.wantContent || p.launch != tt.wantLaunch {
				t.Errorf("ext %q, content %q, launch %v; want %q, %q, %v", p.ext, p.content, p.launch, tt.wantExt, tt.wantContent, tt.wantLaunch)
			}
		})
	}
}

func TestLauncher(t *testing.T) {
	t.Parallel()
	tests := []struct {
		script   string
		wantCall string
	}{
		{`C:\ProgramData\Kanade\kanade-1.ps1`, `& 'C:\ProgramData\Kanade\kanade-1.ps1'`},
		{`C:\Users\O'Brien\kanade-2.ps1`, `& 'C:\Users\O''Brien\kanade-2.ps1'`},
		{"C:\\Users\\O\u2019Neil\\日本\\kanade-3.ps1", "& 'C:\\Users\\O\u2019\u2019Neil\\日本\\kanade-3.ps1'"},
		{`C:\a b\$x;‘q‛.ps1`, `& 'C:\a b\$x;‘‘q‛‛.ps1'`},
	}
	const marker = `C:\ProgramData\Kanade\O'Brien\kanade-9.pending`
	for _, tt := range tests {
		got := string(launcher(tt.script, marker))
		want := "\xEF\xBB\xBF" +
			"[System.IO.File]::Delete('C:\\ProgramData\\Kanade\\O''Brien\\kanade-9.pending')\r\n" +
			"try { [Console]::OutputEncoding = New-Object System.Text.UTF8Encoding $false } catch { }\r\n" +
			"$OutputEncoding = New-Object System.Text.UTF8Encoding $false\r\n" +
			"$global:LASTEXITCODE = 0\r\n" +
			tt.wantCall + "\r\n" +
			"exit $global:LASTEXITCODE\r\n"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("launcher(%q) mismatch (-want +got):\n%s", tt.script, diff)
		}
	}
}

func TestPlanWrite(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		h         host
		shell     string
		wantFiles int    // files written
		wantRun   string // pattern of the base name of the file to run
	}{
		{"sh", linuxHost, wire.ShellSh, 1, "kanade-*.sh"},
		{"linux pwsh: no launcher", linuxHost, wire.ShellPwsh, 1, "kanade-*.ps1"},
		{"windows cmd", windowsHost, wire.ShellCmd, 1, "kanade-*.cmd"},
		{"windows powershell: script, marker and launcher", windowsHost, wire.ShellPowerShell, 3, "kanade-*-launch.ps1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, no := makePlan(tt.h, tt.shell, "echo hi")
			if no.state != "" {
				t.Fatal(no.reason)
			}
			dir := filepath.Join(t.TempDir(), "new")
			w, err := p.write(dir)
			run, written := w.run, w.files
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			if len(written) != tt.wantFiles {
				t.Fatalf("write created %d files (%q), want %d", len(written), written, tt.wantFiles)
			}
			if ok, _ := filepath.Match(tt.wantRun, filepath.Base(run)); !ok || filepath.Dir(run) != dir {
				t.Errorf("file to run = %s, want %s in %s", run, tt.wantRun, dir)
			}
			script, err := os.ReadFile(written[0])
			if err != nil {
				t.Fatal(err)
			}
			if string(script) != string(p.content) {
				t.Errorf("script file holds %q, want %q", script, p.content)
			}
			if p.launch {
				launch, err := os.ReadFile(run)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(launch), psQuote(written[0])) || !strings.Contains(string(launch), psQuote(w.marker)) {
					t.Errorf("launcher %q does not delete the marker %s and call the script %s", launch, w.marker, written[0])
				}
				if m, err := os.ReadFile(w.marker); err != nil || len(m) != 0 {
					t.Errorf("marker %s: %q, %v; want an empty file", w.marker, m, err)
				}
			} else if w.marker != "" {
				t.Errorf("marker %s written for a run without a launcher", w.marker)
			}
			for _, f := range append(written, dir) {
				fi, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				want := os.FileMode(0o600)
				if fi.IsDir() {
					want = 0o700
				}
				if got := fi.Mode().Perm(); got != want && !isWindows() {
					t.Errorf("%s has mode %v, want %v", f, got, want)
				}
			}
		})
	}
}

// isWindows reports whether the tests run on Windows, where file modes are
// not Unix permissions.
func isWindows() bool { return localHost().goos == "windows" }
