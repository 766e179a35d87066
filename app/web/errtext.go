package web

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/kanadehq/kanade/app/dispatch"
	"github.com/kanadehq/kanade/app/enroll"
	"github.com/kanadehq/kanade/app/problem"
)

// problemsMessage is the API message of a validation error: its problems,
// field first ("target.pcs: unknown PC: PC-TYPO-99"), at most a few.
func problemsMessage(ps []problem.Problem) string {
	const shown = 3
	var parts []string
	for i, p := range ps {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more", len(ps)-shown))
			break
		}
		part := p.Message
		if p.Field != "" {
			part = p.Field + ": " + part
		}
		if p.Line > 0 {
			part = fmt.Sprintf("line %d: %s", p.Line, part)
		}
		parts = append(parts, part)
	}
	if len(parts) == 0 {
		return "the request is invalid"
	}
	return strings.Join(parts, "; ")
}

// notFoundRE reads the store's "store: <what> <id>: not found".
var notFoundRE = regexp.MustCompile(`store: (agent key|agent|api token|enrollment token|execution|inventory of|result|schedule|session) ?([^:]*): `)

// notFoundMessage says what is missing in words, without the store's
// wording: "No agent named nope."
func notFoundMessage(err error) string {
	m := notFoundRE.FindStringSubmatch(err.Error())
	if m == nil {
		return "Not found."
	}
	what, id := m[1], m[2]
	switch what {
	case "agent":
		if id == "" {
			break
		}
		return "No agent named " + id + "."
	case "agent key":
		return "No agent named " + id + " has enrolled."
	case "api token":
		return strings.TrimSpace("No such API token "+id) + "."
	case "enrollment token":
		return strings.TrimSpace("No such enrollment token "+id) + "."
	case "session":
		return "The session has ended."
	case "execution":
		return "No execution " + id + "."
	case "inventory of":
		return "No inventory from " + id + " yet."
	case "result":
		if exec, pc, ok := strings.Cut(id, "/"); ok {
			return "No result from " + pc + " in execution " + exec + "."
		}
	case "schedule":
		return "No schedule named " + id + "."
	}
	return "Not found."
}

// errorText maps an error the way handleError does (the same status and
// message), for forms that show it in place. 5xx are logged here.
func (s *server) errorText(c echo.Context, err error) (int, string) {
	status, code, msg, _ := s.classify(c, err)
	if status >= 500 {
		s.logFailure(c, status, code, err)
	}
	return status, capitalize(msg)
}

// formProblems adds a form post's error to errs, by field: a validation
// error's problems next to their fields (field maps a problem's field to
// the form's, words says it for people; the first per field wins), any
// other error as the form's own ("" key), with the status handleError
// would answer. The form is then shown again with what was typed.
func (s *server) formProblems(c echo.Context, err error, errs map[string]string, field func(string) string, words func(problem.Problem) string) int {
	var ve *problem.Error
	switch {
	case errors.As(err, &ve):
		for _, p := range ve.Problems {
			if f := field(p.Field); errs[f] == "" {
				errs[f] = words(p)
			}
		}
		return http.StatusUnprocessableEntity
	case errors.Is(err, enroll.ErrInvalid):
		errs[""] = capitalize(strings.TrimPrefix(err.Error(), enroll.ErrInvalid.Error()+": "))
		return http.StatusUnprocessableEntity
	}
	status, msg := s.errorText(c, err)
	if errors.Is(err, dispatch.ErrLocked) {
		msg = s.lockedText(c)
	}
	errs[""] = msg
	return status
}

// lockedText says why a form's work was refused during the emergency
// stop, without the server's clock (the banner shows when, in the
// viewer's time).
func (s *server) lockedText(c echo.Context) string {
	const rest = "nothing new runs until an admin lifts it on the Emergency stop page. Your input is kept below."
	if s.Dispatcher != nil {
		if es, err := s.Dispatcher.EmergencyStop(c.Request().Context()); err == nil && es.Active {
			return fmt.Sprintf("The emergency stop is on (%s: %s): %s", es.By, es.Reason, rest)
		}
	}
	return "The emergency stop is on: " + rest
}
