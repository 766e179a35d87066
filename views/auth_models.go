package views

// LoginModel is the sign-in page.
type LoginModel struct {
	StartURL string // starts the sign-in at the identity provider
	Issuer   string
	Notice   string // e.g. "You are signed out."
	Error    string // why the last sign-in failed
}

// SettingsModel is the Settings page: API tokens and the create form
// (with what was typed when it had problems).
type SettingsModel struct {
	Tokens                []APITokenRow
	Roles                 []string
	Name, Role, ExpiresIn string
	// Errors are the create form's problems by field ("" for the
	// form's own, or for a row's Revoke that failed).
	Errors FieldErrors
}

// APITokenRow is one API token (never its secret).
type APITokenRow struct {
	ID, Name, Role, CreatedBy, State string
	Created, Expires, LastUsed       TimeText
	RevokeURL                        string // empty once revoked
	RevokeConfirm                    string // the question Revoke asks
}

// APITokenCreatedModel shows a new API token, once.
type APITokenCreatedModel struct {
	Name, Role, Secret string
}
