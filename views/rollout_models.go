package views

// RolloutView is what a wave card says beyond its state: an outcome that
// is not plain success, whether its rollout is halted, and its counts
// linked to those targets.
type RolloutView struct {
	// Outcome is "passed_with_failures" for a wave that succeeded with
	// failures within its limit ("" otherwise); OutcomeText says it:
	// "passed with 2 failed (limit 2)".
	Outcome, OutcomeText string
	// Halted: the rollout is halted, so the wave does not start and
	// cannot be approved until it is resumed.
	Halted bool
	// Tally is the wave's count of each state, linked to those targets.
	Tally []CountLink
}

// CountLink is the number of targets in one state, linked to the targets
// table filtered to them (URL: the execution page; TableURL: the table
// partial). The URLs are empty when N is 0.
type CountLink struct {
	State         string
	N             int
	URL, TableURL string
}

// TargetWhy is what a target's row says beyond its state: its wave and,
// for a target that cannot run yet, why.
type TargetWhy struct {
	// Wave is its wave, "2. fleet" ("" outside a rollout).
	Wave string
	// Why says why a pending target has not run ("offline — runs when it
	// reconnects"); Until (RFC 3339) is when it stops waiting ("" for no
	// such time).
	Why, Until string
}

// TargetWaves is the wave filter of a rollout's targets table.
type TargetWaves struct {
	// Wave is the current filter: a wave's number, 1-based as the page
	// numbers them (0: every wave).
	Wave int
	// Waves are the rollout's waves (none outside a rollout).
	Waves []WaveOption
}

// WaveOption is one wave in the wave filter.
type WaveOption struct {
	N     int    // 1-based
	Label string // "2. fleet"
}
