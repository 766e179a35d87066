package views

// SchedulesModel is the Schedules page: every schedule, and the form to
// add one (with what was typed when it had problems).
type SchedulesModel struct {
	Rows []ScheduleRow
	// Jobs are the job ids the form offers.
	Jobs []string
	// CanEdit: the caller may add, toggle and delete schedules.
	CanEdit bool
	// Suppressed: the emergency stop is on, fires are suppressed.
	Suppressed bool

	ID, Description, Cron, Timezone, JobID, Groups, PCs string
	Enabled                                             bool
	// Errors are the form's problems by field ("" for the form's own, or
	// for a row's button that failed).
	Errors FieldErrors
}

// ScheduleRow is one schedule.
type ScheduleRow struct {
	ID, Description, Cron, Human, Timezone string
	JobID, JobURL, Target                  string
	// Source is the file that defines it ("" = made in the GUI or API).
	Source            string
	Enabled, Shadowed bool
	Problem           string
	Next, Last        TimeText
	LastStatus        string
	LastReason        string
	LastExecURL       string
	// ToggleURL and DeleteURL are set when the caller may change it.
	ToggleURL, DeleteURL string
	// DeleteConfirm is the question Delete asks.
	DeleteConfirm string
}
