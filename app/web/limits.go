package web

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/auth"
)

// maxBodyBytes is the largest request body of a form and of a JSON API
// call (a job manifest sent as YAML has jobs.MaxSize).
const maxBodyBytes = 1 << 20 // the messages say "1 MiB"

// DefaultSSEPerCaller is how many live (SSE) streams one caller (a user,
// an API token, dev mode's "dev") may hold open at once: a few browser
// tabs' worth. Each stream holds a connection, a subscription and, for
// live output, a JetStream consumer.
const DefaultSSEPerCaller = 16

// limitFormBody caps the body of every request outside /api/ at
// maxBodyBytes, as decodeJSON does for the API, and reads a form body at
// once so that one too large is answered 413 rather than read as an empty
// form. API handlers cap their own bodies.
func limitFormBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if isAPI(c) || r.Body == nil || r.Body == http.NoBody {
			return next(c)
		}
		limit, tooLarge := int64(maxBodyBytes), apiErr(http.StatusRequestEntityTooLarge, "too_large", "the request body is larger than 1 MiB", nil)
		if big, ok := largeForms[r.URL.Path]; ok && r.Method == http.MethodPost {
			limit, tooLarge = big.limit, apiErr(http.StatusRequestEntityTooLarge, "too_large", big.tooLarge, nil)
			_ = http.NewResponseController(c.Response().Writer).SetReadDeadline(time.Now().Add(big.read))
		}
		if r.ContentLength > limit {
			return tooLarge
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
		var err error
		switch ct, _, _ := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType)); ct {
		case echo.MIMEApplicationForm:
			err = r.ParseForm()
		case echo.MIMEMultipartForm:
			err = r.ParseMultipartForm(maxBodyBytes)
		}
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return tooLarge
		}
		return next(c)
	}
}

// sseLimiter counts the open live streams of each caller.
type sseLimiter struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

// acquire takes one of p's streams; ok is false when p has max open.
func (l *sseLimiter) acquire(p *auth.Principal) (release func(), ok bool) {
	key := "anonymous"
	switch {
	case p == nil:
	case p.Kind == auth.KindToken:
		key = "token:" + p.ID // names of tokens need not be unique
	default:
		key = string(p.Kind) + ":" + p.Name // a user's sessions share the limit
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= l.max {
		return nil, false
	}
	l.open[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.open[key]--; l.open[key] <= 0 {
				delete(l.open, key)
			}
		})
	}, true
}

// acquireSSE takes one of the caller's live streams, or answers 429.
func (s *server) acquireSSE(c echo.Context) (release func(), err error) {
	release, ok := s.sse.acquire(principal(c))
	if !ok {
		return nil, apiErr(http.StatusTooManyRequests, "too_many_streams",
			fmt.Sprintf("you have %d live views open, the most one user may have; close some tabs and reload", s.sse.max), nil)
	}
	return release, nil
}
