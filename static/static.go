// Package static embeds kanade's browser assets: the vendored htmx and its
// SSE extension (their version is in the file name, so a new version is a
// new URL and never a stale cache), our stylesheet and our one script. The
// server serves FS at /static/<name>.
package static

import "embed"

// FS holds every asset, at its name (no directory).
//
//go:embed *.js *.css *.svg
var FS embed.FS

// Names of the assets in FS.
const (
	HTMX    = "htmx-2.0.11.min.js"        // htmx.org 2.0.11, npm dist/htmx.min.js
	SSE     = "htmx-ext-sse-2.2.4.min.js" // htmx-ext-sse 2.2.4, npm dist/sse.min.js
	CSS     = "kanade.css"
	JS      = "kanade.js"
	Favicon = "favicon.svg"
)
