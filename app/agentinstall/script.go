package agentinstall

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/kanadehq/kanade/agent/wire"
)

// Install is what one install command carries. Every value is checked
// before it is written into a command: each sits in single quotes, so
// none may hold a character a shell would read.
type Install struct {
	Platform Platform
	// DownloadURL is where the command fetches the agent (this server's
	// /download/agent/<os>-<arch>).
	DownloadURL string
	// SHA256 is what the download must hash to (lower-case hex).
	SHA256 string
	// AgentURL is the broker URL (or comma-separated URLs) for --server.
	AgentURL string
	// Bundle is the enrollment credentials file; Secret is its token's
	// secret, which also authorises the download.
	Bundle []byte
	Secret string
	Groups []string
}

// Command is the install command for the platform's OS: PowerShell on
// Windows, a POSIX shell elsewhere.
func (in Install) Command() (string, error) {
	if in.Platform.OS == "windows" {
		return in.PowerShell()
	}
	return in.Shell()
}

// values are the checked values, ready to sit between single quotes.
type values struct {
	url, sum, server, secret, groups, bundle string
}

func (in Install) check() (values, error) {
	var ps []string
	if u, err := url.Parse(in.DownloadURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || !quotable(in.DownloadURL) {
		ps = append(ps, fmt.Sprintf("download URL %q is not a plain http(s) URL", in.DownloadURL))
	}
	if len(in.SHA256) != 64 || strings.Trim(in.SHA256, "0123456789abcdef") != "" {
		ps = append(ps, "the SHA-256 must be 64 lower-case hex digits")
	}
	var servers []string
	for _, s := range strings.Split(in.AgentURL, ",") {
		s = strings.TrimSpace(s)
		if u, err := url.Parse(s); err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" || !quotable(s) {
			ps = append(ps, fmt.Sprintf("agent URL %q is not a nats:// or tls:// URL", s))
		}
		servers = append(servers, s)
	}
	if !strings.HasPrefix(in.Secret, "kanade-enroll-") || !quotable(in.Secret) {
		ps = append(ps, "the enrollment token secret is malformed")
	}
	if len(in.Bundle) == 0 {
		ps = append(ps, "the enrollment bundle is empty")
	}
	groups := wire.NormalizeGroups(in.Groups)
	for _, g := range groups {
		if err := wire.ValidateGroup(g); err != nil {
			ps = append(ps, err.Error())
		}
	}
	if len(ps) > 0 {
		return values{}, fmt.Errorf("install command: %s", strings.Join(ps, "; "))
	}
	return values{url: in.DownloadURL, sum: in.SHA256, server: strings.Join(servers, ","), secret: in.Secret,
		groups: strings.Join(groups, ","), bundle: base64.StdEncoding.EncodeToString(in.Bundle)}, nil
}

// quotable reports whether s can sit between single quotes in sh and in
// PowerShell and mean itself: URL characters without quotes, spaces,
// '$', '`' or anything else either language might expand.
func quotable(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("-._~:/?&=%+,@[]", r):
		default:
			return false
		}
	}
	return s != ""
}

// errNotWindows is returned for a PowerShell command on another OS.
var errNotWindows = errors.New("install command: PowerShell commands are for Windows")

// Shell is the one-line command for a root shell on Linux (sh, bash,
// dash or zsh). It runs in a subshell, so a failure ends the subshell
// and not the admin's shell, and the token secret never appears in a
// process's arguments when curl is there (wget gets it as an argument).
//
// It downloads the agent to /usr/local/bin/kanade-agent, refuses it
// unless its SHA-256 matches, writes the enrollment bundle to a
// temporary file, runs `kanade-agent service install` (which copies the
// bundle into the agent's protected data directory) and `service start`,
// and deletes the temporary file. Environment overrides, for tests and
// unusual layouts: KANADE_PREFIX installs under that directory (without
// needing root); KANADE_NO_SERVICE=1 runs the agent in the foreground
// instead of installing a service, with its data in KANADE_DATA
// (default PREFIX/var/lib/kanade) and the bundle kept there.
func (in Install) Shell() (string, error) {
	v, err := in.check()
	if err != nil {
		return "", err
	}
	if in.Platform.OS == "windows" {
		return "", errors.New("install command: the shell command is not for Windows")
	}
	st := []string{
		"( set -eu",
		"u=" + sq(v.url), "h=" + sq(v.sum), "s=" + sq(v.server), "t=" + sq(v.secret), "g=" + sq(v.groups), "b=" + sq(v.bundle),
		`p="${KANADE_PREFIX:-}"`,
		`if [ -z "$p" ] && [ "$(id -u)" != 0 ]; then echo "kanade: run this as root (sudo -i, then paste it again)" >&2; exit 1; fi`,
		`a="$p/usr/local/bin/kanade-agent"`, `f="$a.download"`, `mkdir -p "$p/usr/local/bin"`,
		`echo "kanade: downloading the agent from $u"`,
		`if command -v curl >/dev/null 2>&1; then c=$(printf 'header = "Authorization: Bearer %s"\n' "$t" | curl -sS -K - -o "$f" -w 'HTTP %{http_code}' "$u") || c="curl failed"; ` +
			`elif command -v wget >/dev/null 2>&1; then c="HTTP 200"; wget -q --header="Authorization: Bearer $t" -O "$f" "$u" || c="wget failed"; ` +
			`else echo "kanade: this command needs curl or wget" >&2; exit 1; fi`,
		`if [ "$c" != "HTTP 200" ]; then echo "kanade: downloading $u failed ($c): $(head -c 600 "$f" 2>/dev/null || true)" >&2; rm -f "$f"; exit 1; fi`,
		`command -v sha256sum >/dev/null 2>&1 || { rm -f "$f"; echo "kanade: this command needs sha256sum (coreutils)" >&2; exit 1; }`,
		`x=$(sha256sum "$f" | cut -d' ' -f1)`,
		`if [ "$x" != "$h" ]; then rm -f "$f"; echo "kanade: refusing to install: the downloaded agent has SHA-256 $x but this command expects $h. Copy a fresh command from Settings > Add agents (the server may have been upgraded); if this happens again, something between this PC and the server changes downloads." >&2; exit 1; fi`,
		`chmod 755 "$f"`,
		`if [ -n "$g" ]; then set -- --groups "$g"; else set --; fi`,
		`if [ "${KANADE_NO_SERVICE:-}" = 1 ]; then d="${KANADE_DATA:-$p/var/lib/kanade}"; mkdir -p "$d"; chmod 700 "$d"; mv -f "$f" "$a"; k="$d/enrollment-bundle"; ` +
			`(umask 077; printf %s "$b" | base64 -d > "$k"); echo "kanade: running the agent in the foreground (KANADE_NO_SERVICE=1)"; ` +
			`exec "$a" --server "$s" --credentials "$k" --data "$d" "$@"; fi`,
		`if [ -x "$a" ]; then "$a" service stop >/dev/null 2>&1 || true; "$a" service uninstall >/dev/null 2>&1 || true; fi`,
		`mv -f "$f" "$a"`,
		`k=$(mktemp)`, `trap 'rm -f "$k"' EXIT`,
		`printf %s "$b" | base64 -d > "$k"`,
		`"$a" service install --server "$s" --credentials "$k" "$@"`,
		`"$a" service start`,
		`echo "kanade: kanade-agent is installed ($a) and running as a service; the PC appears under Agents (or Pending agents) within a minute." )`,
	}
	return strings.Join(st, "; "), nil
}

// PowerShell is the one-line command for Windows PowerShell 5.1 or
// PowerShell 7, run as Administrator. It runs in a script block, so a
// failure prints its message and leaves the window open.
//
// It downloads the agent to %ProgramFiles%\kanade\kanade-agent.exe,
// refuses it unless its SHA-256 matches, writes the enrollment bundle
// to a temporary file, runs `kanade-agent service install` and `service
// start`, and deletes the temporary file whatever happened. The same
// overrides as Shell: KANADE_PREFIX (install directory, no
// Administrator check), KANADE_NO_SERVICE=1 with KANADE_DATA (default
// PREFIX\data).
func (in Install) PowerShell() (string, error) {
	v, err := in.check()
	if err != nil {
		return "", err
	}
	if in.Platform.OS != "windows" {
		return "", errNotWindows
	}
	st := []string{
		"& { $ErrorActionPreference='Stop'", "$ProgressPreference='SilentlyContinue'",
		"$u=" + sq(v.url), "$h=" + sq(v.sum), "$s=" + sq(v.server), "$t=" + sq(v.secret), "$g=" + sq(v.groups), "$b=" + sq(v.bundle),
		`$p=$env:KANADE_PREFIX`,
		`if (-not $p) { if (-not ([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) { throw 'kanade: run this in PowerShell opened with "Run as administrator"' }; $p=Join-Path $env:ProgramFiles 'kanade' }`,
		`New-Item -ItemType Directory -Force -Path $p | Out-Null`,
		`$a=Join-Path $p 'kanade-agent.exe'`, `$f="$a.download"`,
		`[Net.ServicePointManager]::SecurityProtocol=[Net.ServicePointManager]::SecurityProtocol -bor 3072`,
		`Write-Host "kanade: downloading the agent from $u"`,
		`try { Invoke-WebRequest -UseBasicParsing -Uri $u -Headers @{Authorization="Bearer $t"} -OutFile $f } catch { throw "kanade: downloading $u failed: $($_.Exception.Message) $($_.ErrorDetails.Message)" }`,
		`$x=(Get-FileHash -Algorithm SHA256 -LiteralPath $f).Hash.ToLowerInvariant()`,
		`if ($x -ne $h) { Remove-Item -Force -LiteralPath $f; throw "kanade: refusing to install: the downloaded agent has SHA-256 $x but this command expects $h. Copy a fresh command from Settings > Add agents (the server may have been upgraded); if this happens again, something between this PC and the server changes downloads." }`,
		`$r=@('--server',$s); if ($g) { $r+=@('--groups',$g) }`,
		`function k { $ErrorActionPreference='Continue'; & $a @args; if ($LASTEXITCODE -ne 0) { throw ('kanade: kanade-agent '+$args[0]+' '+$args[1]+' failed with exit code '+$LASTEXITCODE) } }`,
		`if ($env:KANADE_NO_SERVICE -eq '1') { $d=$env:KANADE_DATA; if (-not $d) { $d=Join-Path $p 'data' }; New-Item -ItemType Directory -Force -Path $d | Out-Null; Move-Item -Force -LiteralPath $f -Destination $a; $c=Join-Path $d 'enrollment-bundle'; [IO.File]::WriteAllBytes($c,[Convert]::FromBase64String($b)); Write-Host 'kanade: running the agent in the foreground (KANADE_NO_SERVICE=1)'; & $a @r '--credentials' $c '--data' $d; return }`,
		`if (Test-Path -LiteralPath $a) { try { & $a service stop *>$null } catch {}; try { & $a service uninstall *>$null } catch {} }`,
		`Move-Item -Force -LiteralPath $f -Destination $a`,
		`$c=Join-Path ([IO.Path]::GetTempPath()) ('kanade-'+[guid]::NewGuid().ToString('N')+'.creds')`,
		`try { [IO.File]::WriteAllBytes($c,[Convert]::FromBase64String($b)); k 'service' 'install' @r '--credentials' $c; k 'service' 'start'; Write-Host "kanade: kanade-agent is installed ($a) and running as a service; the PC appears under Agents (or Pending agents) within a minute." } finally { Remove-Item -Force -ErrorAction SilentlyContinue -LiteralPath $c } }`,
	}
	return strings.Join(st, "; "), nil
}

// sq single-quotes a value checked by check (no quote inside).
func sq(s string) string { return "'" + s + "'" }
