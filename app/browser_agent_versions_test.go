//go:build !windows

package main

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowser_AgentVersions: an admin uploads an agent binary with the
// Agent versions page's form; the page then lists the release (version,
// platform, hash) and the fleet's versions from the agents' heartbeats.
func TestBrowser_AgentVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServer(t, t.TempDir(), "")
	startAgent(t, s, "pc-ver-1", []string{"lab"}, "")
	s.waitOnline(t, "pc-ver-1")
	bin := filepath.Join(t.TempDir(), "kanade-agent")
	if err := os.WriteFile(bin, []byte("\x7fELF a kanade-agent build"), 0o755); err != nil {
		t.Fatal(err)
	}
	platform := runtime.GOOS + "-" + runtime.GOARCH

	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/agent-versions")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the nav entry", `document.querySelector('nav a[href="/agent-versions"]') !== null`)
	waitJS(t, ctx, "the fleet's versions", `[...document.querySelectorAll('[data-testid=fleet-row]')].some(r => r.dataset.version === "test" && r.textContent.includes("lab"))`)
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`[data-testid=upload-form] input[name=version]`), "v7.0.0"),
		chromedp.SetValue(chromedp.CSS(`[data-testid=upload-form] select[name=platform]`), platform),
		chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=upload-form] input[name=binary]`), []string{bin}),
	); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `[data-testid=upload-release]`)
	waitJS(t, ctx, "the uploaded release", `[...document.querySelectorAll('[data-testid=release-row]')].some(r => r.dataset.version === "v7.0.0" && r.dataset.platform === "`+runtime.GOOS+"/"+runtime.GOARCH+`")`)
	screenshot(t, ctx, "agent-versions")
	var rels struct {
		Releases []struct {
			Version, SHA256 string
		}
	}
	s.get(t, "/api/agent-releases", &rels)
	if len(rels.Releases) != 1 || rels.Releases[0].Version != "v7.0.0" {
		t.Fatalf("releases = %+v", rels)
	}
	// The short hash is shown, the full one is what Copy copies.
	waitJS(t, ctx, "the release's hash", `document.querySelector('[data-testid=release-row] [title="`+rels.Releases[0].SHA256+`"]') !== null`)
	// A hostile version is refused next to its field.
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.CSS(`[data-testid=upload-form] input[name=version]`), "../x"),
		chromedp.SetUploadFiles(chromedp.CSS(`[data-testid=upload-form] input[name=binary]`), []string{bin}),
	); err != nil {
		t.Fatal(err)
	}
	click(t, ctx, `[data-testid=upload-release]`)
	waitJS(t, ctx, "the version's error", `document.querySelector('#err-version') !== null && document.querySelector('#err-version').textContent.includes("../x")`)
}
