package views

// AddAgentsModel is Settings › Add agents: the form (with what was
// typed) and, once submitted, the install command it made.
type AddAgentsModel struct {
	OS, Arch, Groups string
	// Token is "default" or "new"; Name, ExpiresIn, MaxUses and
	// AutoApprove describe a new one.
	Token, Name, ExpiresIn, MaxUses string
	AutoApprove                     bool
	// DefaultApproves says whether the default token approves PCs by
	// itself (dev mode) or an admin must.
	DefaultApproves bool
	Platforms       []PlatformOption
	// AgentURL is the broker URL the commands give agents.
	AgentURL string
	// Downloads is the directory the server looks in for agent binaries.
	Downloads string
	// Errors are the form's problems by field ("" for the form's own).
	Errors FieldErrors
	// Unavailable says why no command can be made on this server ("" when one can).
	Unavailable string
	Result      *InstallResult
}

// PlatformOption is one os-arch the page offers.
type PlatformOption struct {
	OS, Arch, Label string
	Built           bool // its binary is on disk
}

// InstallResult is a ready install command and what it carries.
type InstallResult struct {
	OS, Platform                    string
	Command                         string
	SHA256, DownloadURL, AgentURL   string
	TokenID, TokenName, InstallPath string
	Groups                          []string
	Expires                         TimeText
	Uses                            string // "1 PC", "unlimited"
	AutoApprove                     bool
}

// settingsTab is one page of Settings.
type settingsTab struct{ Key, Label, URL string }

var settingsTabs = []settingsTab{
	{"api-tokens", "API tokens", "/settings"},
	{"add-agents", "Add agents", "/settings/add-agents"},
	{"enrollment-tokens", "Enrollment tokens", "/enrollments#enrollment-tokens"},
	{"backups", "Backups", "/settings/backups"},
}
