package views

// AuditRow is one audit event.
type AuditRow struct {
	Seq                   uint64
	At                    TimeText
	Actor, Action, Target string
	TargetURL             string // a link to what it acted on, when there is a page
	Detail                string // compact JSON
}

// AuditModel is the Audit page and its table partial.
type AuditModel struct {
	Actor, Action, Since string // current filters
	Rows                 []AuditRow
	Pager                Pager
	ExportURL            string // CSV of the current filters
}
