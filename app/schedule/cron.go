// Package schedule fires jobs on cron schedules: the schedules of the jobs
// directory and those created in the GUI or API. go-quartz reads the cron
// expressions; the Scheduler fires at their instants by a clock it is
// given (clockwork), so that tests move time instead of waiting for it.
// Every fire is claimed in the database first (schedule, instant), so it
// happens once even with two server processes, and a restart neither
// loses nor doubles one.
package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/reugn/go-quartz/quartz"
)

// Cron is a parsed cron expression.
type Cron struct {
	// Expr is what was written; Quartz is the 6–7 field form go-quartz reads.
	Expr, Quartz string
	Loc          *time.Location
	trigger      *quartz.CronTrigger
}

// ParseCron reads the original kanade's 6-field form with seconds first
// ("*/10 * * * * *"), the usual 5-field crontab ("0 3 * * *", weekday 0 or 7
// = Sunday), a 7-field form with a year, or a descriptor (@daily). tz is an
// IANA zone ("" = UTC).
func ParseCron(expr, tz string) (Cron, error) {
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil || tz == "Local" {
			return Cron{}, fmt.Errorf("timezone %q is not an IANA time zone such as \"Europe/Berlin\"", tz)
		}
		loc = l
	}
	expr = strings.Join(strings.Fields(expr), " ")
	q := expr
	fs := strings.Fields(expr)
	switch {
	case expr == "":
		return Cron{}, fmt.Errorf("cron is empty: write when to fire, such as \"0 3 * * *\" (every day at 03:00)")
	case strings.HasPrefix(expr, "@"):
	case len(fs) == 5:
		dow, err := crontabWeekdays(fs[4])
		if err != nil {
			return Cron{}, fmt.Errorf("cron %q: weekday: %w", expr, err)
		}
		q = strings.Join(append([]string{"0"}, append(fs[:4:4], dow)...), " ")
	case len(fs) == 6 || len(fs) == 7:
	default:
		return Cron{}, fmt.Errorf("cron %q has %d fields: write 5 (minute hour day month weekday) or 6 with seconds first", expr, len(fs))
	}
	t, err := quartz.NewCronTriggerWithLoc(q, loc)
	if err != nil {
		return Cron{}, fmt.Errorf("cron %q: %s", expr, strings.TrimPrefix(err.Error(), "invalid cron expression: "))
	}
	return Cron{Expr: expr, Quartz: q, Loc: loc, trigger: t}, nil
}

// crontabWeekdays maps crontab weekday numbers (0–7, Sunday = 0 or 7) to
// go-quartz's (1–7, Sunday = 1); names and * stay.
func crontabWeekdays(f string) (string, error) {
	items := strings.Split(f, ",")
	for i, it := range items {
		base, step, hasStep := strings.Cut(it, "/")
		lo, hi, isRange := strings.Cut(base, "-")
		conv := func(s string) (string, error) {
			if s == "*" || s == "?" || s == "" {
				return s, nil
			}
			n, err := strconv.Atoi(s)
			if err != nil {
				return s, nil // a name such as MON; go-quartz checks it
			}
			if n < 0 || n > 7 {
				return "", fmt.Errorf("%d is not 0–7", n)
			}
			return strconv.Itoa(n%7 + 1), nil
		}
		l, err := conv(lo)
		if err != nil {
			return "", err
		}
		out := l
		if isRange {
			h, err := conv(hi)
			if err != nil {
				return "", err
			}
			if hi == "7" {
				h = "7" // "1-7" crontab is Monday through Sunday: quartz 2-7 then 1
				out = l + "-7,1"
				if hasStep {
					return "", fmt.Errorf("a step over a range ending on Sunday (7) is not supported; use 0")
				}
				items[i] = out
				continue
			}
			out += "-" + h
		}
		if hasStep {
			out += "/" + step
		}
		items[i] = out
	}
	return strings.Join(items, ","), nil
}

// Next returns the first fire instant after t.
func (c Cron) Next(t time.Time) (time.Time, error) {
	n, err := c.trigger.NextFireTime(t.UnixNano())
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, n).UTC(), nil
}

// Latest returns the last fire instant at or before t, looking back at
// most lookback (zero when there is none).
func (c Cron) Latest(t time.Time, lookback time.Duration) time.Time {
	var last time.Time
	for cur := t.Add(-lookback); ; {
		n, err := c.Next(cur)
		if err != nil || n.After(t) {
			return last
		}
		last, cur = n, n
	}
}

// Describe reads common cron expressions to people ("every 10 seconds",
// "every day at 03:00"); others come back as written.
func Describe(expr string) string {
	fs := strings.Fields(expr)
	switch expr {
	case "@yearly", "@annually":
		return "every year on 1 January at 00:00"
	case "@monthly":
		return "on the first of every month at 00:00"
	case "@weekly":
		return "every Sunday at 00:00"
	case "@daily", "@midnight":
		return "every day at 00:00"
	case "@hourly":
		return "every hour"
	}
	if len(fs) == 5 {
		fs = append([]string{"0"}, fs...)
	}
	if len(fs) == 7 && fs[6] == "*" {
		fs = fs[:6]
	}
	if len(fs) != 6 {
		return expr
	}
	sec, min, hour, dom, mon, dow := fs[0], fs[1], fs[2], fs[3], fs[4], fs[5]
	any := func(s string) bool { return s == "*" || s == "?" }
	every := func(s, unit string) (string, bool) {
		if s == "*" {
			return "every " + unit, true
		}
		if n, ok := strings.CutPrefix(s, "*/"); ok {
			if n == "1" {
				return "every " + unit, true
			}
			return "every " + n + " " + unit + "s", true
		}
		return "", false
	}
	if any(dom) && any(mon) && any(dow) {
		if any(min) && any(hour) {
			if s, ok := every(sec, "second"); ok {
				return s
			}
		}
		if isNum(sec) && any(hour) {
			if s, ok := every(min, "minute"); ok {
				return s + atSecond(sec)
			}
			if isNum(min) {
				return "every hour at minute " + min + atSecond(sec)
			}
		}
		if isNum(sec) && isNum(min) {
			if s, ok := every(hour, "hour"); ok {
				return s + " at minute " + min + atSecond(sec)
			}
			if isNum(hour) {
				return "every day at " + clock(hour, min, sec)
			}
		}
	}
	return expr
}

func isNum(s string) bool { _, err := strconv.Atoi(s); return err == nil }

func atSecond(sec string) string {
	if sec == "0" {
		return ""
	}
	return ", second " + sec
}

func clock(h, m, s string) string {
	hh, _ := strconv.Atoi(h)
	mm, _ := strconv.Atoi(m)
	ss, _ := strconv.Atoi(s)
	if ss != 0 {
		return fmt.Sprintf("%02d:%02d:%02d", hh, mm, ss)
	}
	return fmt.Sprintf("%02d:%02d", hh, mm)
}
