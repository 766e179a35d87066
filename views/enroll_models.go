package views

// AgentIdentity is the enrollment of one agent, shown on its page.
type AgentIdentity struct {
	Status    string // pending, approved, rejected, revoked
	PublicKey string
	Expires   TimeText // when its credential expires
	DecidedBy string
	Reason    string
	RevokeURL string // empty when it cannot be revoked
	RevokeAsk string // the confirmation question
	CSRFToken string
	// GroupsURL takes the form that changes the agent's groups; Groups is
	// its current value ("canary, lab").
	GroupsURL string
	Groups    string
	// GroupsError says why the groups typed in Groups were not saved.
	GroupsError string
}

// EnrollmentRow is one agent key waiting for (or past) an admin's decision.
type EnrollmentRow struct {
	PCID, Hostname, OS, Arch, PublicKey, Status, TokenID, DecidedBy, Reason string
	Groups                                                                  []string
	Requested                                                               TimeText
	ApproveURL, RejectURL                                                   string
	// RejectConfirm is the question Reject asks.
	RejectConfirm string
	// BoundKey is set for a re-enrollment: the key the PC is bound to now,
	// which approving revokes.
	BoundKey string
}

// EnrollmentsModel is the Pending agents page.
type EnrollmentsModel struct {
	Status    string // the filter: "pending" (default) or "" for all
	Rows      []EnrollmentRow
	Pager     Pager
	Pending   int
	CSRFToken string
	Tokens    []TokenRow
	// TokenForm is the New token form as shown (with what was typed
	// when it had problems).
	TokenForm TokenForm
	// Errors are the New token form's problems by field ("" for the
	// form's own; "row" for a button of the page that failed).
	Errors FieldErrors
}

// TokenForm is the New enrollment token form.
type TokenForm struct {
	Name, Groups, AllowGroups, ExpiresIn, MaxUses string
	AutoApprove                                   bool
}

// TokenRow is one enrollment token.
type TokenRow struct {
	ID, Name, Uses, State string // State: "usable" or why not
	Groups                []string
	AutoApprove           bool
	Expires, Created      TimeText
	CreatedBy             string
	RevokeURL             string
	// RevokeConfirm and RotateConfirm are the questions the buttons ask.
	RevokeConfirm, RotateConfirm string
	// RotateURL gives the default token's file a new secret and broker
	// user ("" for other tokens).
	RotateURL string
	// AllowGroups are the groups agents may ask for ("*": any).
	AllowGroups []string
}

// TokenCreatedModel shows a new token's secret, once.
type TokenCreatedModel struct {
	Name, Secret, Credentials string
}
