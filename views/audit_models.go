package views

// AuditRow is one audit event.
type AuditRow struct {
	Seq                   uint64
	At                    TimeText
	Actor, Action, Target string
	// Sentence says what happened ("dev approved wave 2 'office' of
	// ux-patch"), with links to what it acted on.
	Sentence AuditSentence
	Detail   string // the event's JSON detail, indented ("" when none)
}

// AuditSentence is an audit event in words: its parts in order, some of
// them links. Failed marks an action that did not complete.
type AuditSentence struct {
	Parts  []AuditPart
	Failed bool
}

// AuditPart is a piece of an audit sentence: plain text, an identifier
// (Mono), or a link to its page (URL).
type AuditPart struct {
	Text string
	URL  string
	Mono bool
}

// Text is the sentence as plain text.
func (s AuditSentence) Text() string {
	var b []byte
	for _, p := range s.Parts {
		b = append(b, p.Text...)
	}
	return string(b)
}

// AuditModel is the Audit page and its table partial.
type AuditModel struct {
	Actor, Action, Since string // current filters
	Rows                 []AuditRow
	Pager                Pager
	ExportURL            string // CSV of the current filters
}
