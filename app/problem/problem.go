// Package problem is the error every service returns for a request it
// refuses as invalid: a list of problems, each naming the field it is
// about. app/web answers it as 400 validation_failed with the problems as
// details (docs/API.md), and forms show each problem next to its field.
package problem

import (
	"strings"

	"github.com/kanadehq/kanade/jobs"
)

// Problem is one thing wrong with a request. Field is the request's field
// ("target.pcs", "execute.timeout"; "" for the request as a whole); Line
// is the 1-based line of an uploaded manifest, 0 when there is none.
type Problem struct {
	Field   string `json:"field"`
	Line    int    `json:"line,omitempty"`
	Message string `json:"message"`
}

// Error lists every problem of a request.
type Error struct{ Problems []Problem }

func (e *Error) Error() string {
	var parts []string
	for _, p := range e.Problems {
		parts = append(parts, p.Field+": "+p.Message)
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// New is the error of a request with one problem, in field.
func New(field, message string) *Error {
	return &Error{Problems: []Problem{{Field: field, Message: message}}}
}

// FromJobs converts a manifest's problems (jobs.Validate and friends).
func FromJobs(ps []jobs.Problem) []Problem {
	out := make([]Problem, 0, len(ps))
	for _, p := range ps {
		out = append(out, Problem{Field: p.Field, Line: p.Line, Message: p.Message})
	}
	return out
}
