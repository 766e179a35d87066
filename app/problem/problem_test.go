package problem

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kanadehq/kanade/jobs"
)

func TestError(t *testing.T) {
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"one", New("script", "is empty"), "invalid request: script: is empty"},
		{"two", &Error{Problems: []Problem{{Field: "shell", Message: `"zsh" is not one of sh, cmd, powershell, pwsh`}, {Field: "script", Message: "is empty"}}},
			`invalid request: shell: "zsh" is not one of sh, cmd, powershell, pwsh; script: is empty`},
		{"none", &Error{}, "invalid request: "},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: Error() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestError_As(t *testing.T) {
	err := fmt.Errorf("deploy: %w", New("target", "matches no agent"))
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("errors.As(%v) found no *Error", err)
	}
	if diff := cmp.Diff([]Problem{{Field: "target", Message: "matches no agent"}}, pe.Problems); diff != "" {
		t.Errorf("Problems (-want +got):\n%s", diff)
	}
}

func TestFromJobs(t *testing.T) {
	in := []jobs.Problem{{Field: "execute.timeout", Line: 7, Message: "is not a duration"}, {Message: "the file is empty"}}
	want := []Problem{{Field: "execute.timeout", Line: 7, Message: "is not a duration"}, {Message: "the file is empty"}}
	if diff := cmp.Diff(want, FromJobs(in)); diff != "" {
		t.Errorf("FromJobs (-want +got):\n%s", diff)
	}
	if got := FromJobs(nil); got == nil || len(got) != 0 {
		t.Errorf("FromJobs(nil) = %#v, want an empty list", got)
	}
}
