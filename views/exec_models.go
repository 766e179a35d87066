package views

// Tick is a duration shown to people. While it runs, From is when it
// started (RFC 3339) and Now the server's time when the page was made:
// kanade.js counts on from Text every second ([data-tick-from]), by the
// browser's clock but from the server's difference, so a skewed clock
// does not show a wrong duration. From is empty when it does not run.
type Tick struct {
	Text, From, Now string
}

// ExecHead is what an execution's head shows besides its facts: its
// name, target and duration, the tab title, and the buttons that act on
// it again (empty URLs are not offered).
type ExecHead struct {
	// RunAgainURL opens the Run form with what ran (for a job: the job's
	// page, with its Deploy panel), named RunAgainLabel.
	RunAgainURL, RunAgainLabel string
	// RerunURL runs the same again on the RerunCount targets that did not
	// succeed, after RerunConfirm.
	RerunURL, RerunConfirm string
	RerunCount             int
	// TabTitle is the browser tab's title (ExecTabTitle), sent with each
	// refresh of the head so the tab follows the outcome.
	TabTitle string
	// Duration is how long the execution ran, or has been running.
	Duration Tick
	// Title is what people call it; Target its target in words.
	Title, Target string
}

// ExecFilterLabel is the words of a choice of ExecListModel.Statuses.
func ExecFilterLabel(s string) string {
	if s == "completed" {
		return "ended (any outcome)"
	}
	return outcomeLabel(s)
}

// outcomeSigns are the outcomes' signs where there is no colour (a tab
// title); a green check is for succeeded only.
var outcomeSigns = map[string]string{
	"succeeded": "✓", "completed_with_failures": "⚠", "failed": "✗", "killed": "■",
	"halted": "‖", "running": "●", "awaiting_approval": "?",
}

// outcomeLabel is the words of an outcome: "completed with failures".
func outcomeLabel(o string) string {
	switch o {
	case "":
		return "unknown"
	case "completed_with_failures":
		return "completed with failures"
	case "awaiting_approval":
		return "awaiting approval"
	}
	return o
}

// ExecTabTitle is an execution page's title, its outcome first so that a
// tab among many says it: "✗ failed · INC-42 printer".
func ExecTabTitle(outcome, name string) string {
	sign := outcomeSigns[outcome]
	if sign == "" {
		sign = "○"
	}
	return sign + " " + outcomeLabel(outcome) + " · " + name
}
