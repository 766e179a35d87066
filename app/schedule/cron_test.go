package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestParseCron(t *testing.T) {
	from := time.Date(2026, 11, 28, 10, 0, 1, 0, time.UTC) // a Saturday
	for _, tc := range []struct {
		expr, tz string
		next     string // RFC 3339, or the error's substring after "!"
		human    string
	}{
		{"*/10 * * * * *", "", "2026-11-28T10:00:10Z", "every 10 seconds"},
		{"* * * * * *", "", "2026-11-28T10:00:02Z", "every second"},
		{"0 3 * * *", "", "2026-11-29T03:00:00Z", "every day at 03:00"},
		{"*/5 * * * *", "", "2026-11-28T10:05:00Z", "every 5 minutes"},
		{"30 * * * *", "", "2026-11-28T10:30:00Z", "every hour at minute 30"},
		{"0 3 * * 1", "", "2026-11-30T03:00:00Z", "0 3 * * 1"},         // crontab Monday
		{"0 3 * * 0", "", "2026-11-29T03:00:00Z", "0 3 * * 0"},         // crontab Sunday
		{"0 3 * * 7", "", "2026-11-29T03:00:00Z", "0 3 * * 7"},         // Sunday again
		{"0 3 * * 1-5", "", "2026-11-30T03:00:00Z", "0 3 * * 1-5"},     // weekdays
		{"0 3 * * 6-7", "", "2026-11-29T03:00:00Z", "0 3 * * 6-7"},     // Saturday-Sunday, after 10:00 Sat
		{"0 0 3 ? * MON", "", "2026-11-30T03:00:00Z", "0 0 3 ? * MON"}, // quartz form
		{"@daily", "", "2026-11-29T00:00:00Z", "every day at 00:00"},
		{"0 3 * * *", "Asia/Tokyo", "2026-11-28T18:00:00Z", "every day at 03:00"}, // 03:00 JST
		{"0 0 12 * * * 2027", "", "2027-01-01T12:00:00Z", "0 0 12 * * * 2027"},
		{"", "", "!empty", ""},
		{"* * *", "", "!3 fields", ""},
		{"61 * * * *", "", "!cron \"61 * * * *\"", ""},
		{"0 3 * * 8", "", "!weekday: 8 is not 0–7", ""},
		{"0 3 * * *", "Mars/Olympus", "!not an IANA time zone", ""},
		{"@fortnightly", "", "!cron \"@fortnightly\"", ""},
	} {
		c, err := ParseCron(tc.expr, tc.tz)
		if want, isErr := strings.CutPrefix(tc.next, "!"); isErr {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("ParseCron(%q, %q) error = %v, want it to mention %q", tc.expr, tc.tz, err, want)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCron(%q): %v", tc.expr, err)
			continue
		}
		n, err := c.Next(from)
		if err != nil || n.Format(time.RFC3339) != tc.next {
			t.Errorf("%q next after %s = %v, %v; want %s", tc.expr, from, n, err, tc.next)
		}
		if got := Describe(tc.expr); got != tc.human {
			t.Errorf("Describe(%q) = %q, want %q", tc.expr, got, tc.human)
		}
	}
}

func TestLatest(t *testing.T) {
	c, _ := ParseCron("*/10 * * * * *", "")
	now := time.Date(2026, 11, 28, 10, 0, 25, 0, time.UTC)
	if got := c.Latest(now, time.Minute); !got.Equal(time.Date(2026, 11, 28, 10, 0, 20, 0, time.UTC)) {
		t.Errorf("latest = %v", got)
	}
	if got := c.Latest(now.Add(-5*time.Second), 2*time.Second); !got.Equal(time.Date(2026, 11, 28, 10, 0, 20, 0, time.UTC)) {
		t.Errorf("latest exactly at an instant = %v", got)
	}
	if got := c.Latest(now, 3*time.Second); !got.IsZero() {
		t.Errorf("no instant within the lookback = %v", got)
	}
}
