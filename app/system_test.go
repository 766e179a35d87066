//go:build !windows

package main

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kanadehq/kanade/app/config"
)

// TestBrowser_SystemPageAndDiskBanner runs a server whose data volume is
// past its warning threshold ([server] disk_warn_percent = 1): /healthz
// stays 200 with the warning, every page shows the amber banner, and
// Admin › System lists the volume, every stream and bucket against its
// limit, the projectors' consumers and who leads what.
func TestBrowser_SystemPageAndDiskBanner(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test (-short)")
	}
	s := startServerWith(t, t.TempDir(), "", func(c *config.Config) { c.Server.DiskWarnPercent = 1 })

	var h map[string]string
	if code := s.get(t, "/healthz", &h); code != http.StatusOK || h["status"] != "ok" || h["nats"] != "ok" || h["db"] != "ok" || !strings.HasPrefix(h["disk"], "warning: the volume of ") {
		t.Fatalf("/healthz = %d %+v, want 200 with a disk warning", code, h)
	}
	var sys struct {
		Streams []struct {
			Name string `json:"name"`
			Key  string `json:"key"`
			Auto bool   `json:"auto"`
		} `json:"streams"`
		Database struct {
			Bytes int64 `json:"bytes"`
		} `json:"database"`
	}
	if code := s.get(t, "/api/system", &sys); code != http.StatusOK || len(sys.Streams) < 9 || sys.Database.Bytes <= 0 {
		t.Fatalf("/api/system = %d %+v", code, sys)
	}

	ctx := newBrowser(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(s.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitJS(t, ctx, "the disk banner", `document.querySelector('[data-testid=health-banner][data-level=warning]')?.textContent.includes('full') === true`)
	screenshot(t, ctx, "disk-banner")
	click(t, ctx, `[data-testid=health-banner] a[href="/system"]`)
	waitJS(t, ctx, "the System page", `location.pathname === '/system'`)
	waitJS(t, ctx, "streams and buckets", `['EXEC','RESULTS','OUTPUT','INVENTORY','AUDIT','HEALTH','KV_fleet','KV_script_current','KV_script_status'].every(n => document.querySelector('[data-testid=stream-row][data-stream="'+n+'"]'))`)
	waitJS(t, ctx, "auto sizes named", `document.querySelector('[data-stream=INVENTORY]').textContent.includes('[streams] inventory_max_bytes (auto)')`)
	waitJS(t, ctx, "the volume", `document.querySelectorAll('[data-testid=volume-row]').length >= 1 && document.querySelector('[data-testid=system-status]').textContent === 'warning'`)
	waitJS(t, ctx, "the audit projector's backlog", `[...document.querySelectorAll('[data-testid=consumer-row]')].some(r => r.textContent.includes('audit-projector'))`)
	waitJS(t, ctx, "leaders", `[...document.querySelectorAll('[data-testid=leader-row]')].every(r => r.textContent.includes('this server'))`)
	waitJS(t, ctx, "System in the top bar", `document.querySelector('.nav a[href="/system"][aria-current=page]') !== null`)
	screenshot(t, ctx, "system")
}
