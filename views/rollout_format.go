package views

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/kanadehq/kanade/views/components"
)

// withWave returns u with its "wave" query parameter set to n (removed
// for 0) and its "offset" removed, so a filter starts on its first page.
// An unparsable u is returned unchanged.
func withWave(u string, n int) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	q := p.Query()
	q.Del("offset")
	if n == 0 {
		q.Del("wave")
	} else {
		q.Set("wave", strconv.Itoa(n))
	}
	p.RawQuery = q.Encode()
	return p.String()
}

// targetsPageURL is the execution page showing the targets table of
// tableURL ("/executions/ID/targets?state=failed" becomes
// "/executions/ID?state=failed"): the address a filter puts in the
// browser, which a person can share.
func targetsPageURL(tableURL string) string {
	p, err := url.Parse(tableURL)
	if err != nil {
		return tableURL
	}
	p.Path = strings.TrimSuffix(p.Path, "/targets")
	return p.String()
}

// emptyTargets says why the targets table is empty.
func emptyTargets(m TargetTableModel) string {
	var wave string
	for _, w := range m.Waves {
		if w.N == m.Wave {
			wave = " of wave " + w.Label
		}
	}
	switch {
	case m.State != "":
		return "No targets" + wave + " are " + components.Label(m.State) + "."
	case wave != "":
		return "Wave " + strings.TrimPrefix(wave, " of wave ") + " has no targets."
	}
	return "This execution has no targets."
}

// countColon is "1 execution:" or "3 executions:" ("0 executions" without
// a colon: nothing follows).
func countColon(n int, one, many string) string {
	if n == 0 {
		return plural(n, one, many)
	}
	return plural(n, one, many) + ":"
}
