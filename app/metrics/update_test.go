package metrics_test

import (
	"testing"

	"github.com/kanadehq/kanade/app/metrics"
)

// The update download permits are scraped as the permits say at the time.
func TestWatchUpdateDownloads(t *testing.T) {
	m := metrics.New()
	n := 3
	m.WatchUpdateDownloads(func() int { return n }, 200)
	fams := scrape(t, m.Handler())
	if got := values(fams, "kanade_update_downloads_in_flight"); got[""] != 3 {
		t.Errorf("in flight = %v, want 3", got)
	}
	if got := values(fams, "kanade_update_downloads_max"); got[""] != 200 {
		t.Errorf("max = %v, want 200", got)
	}
	n = 1
	if got := values(scrape(t, m.Handler()), "kanade_update_downloads_in_flight"); got[""] != 1 {
		t.Errorf("in flight after a change = %v, want 1", got)
	}
}
