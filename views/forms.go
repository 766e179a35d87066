package views

import "strings"

// FieldErrors maps a form field's name to the message shown next to it;
// the "" key is the form's own error (one that belongs to no field, such
// as "the emergency stop is on").
type FieldErrors map[string]string

// For returns the message of one field ("" for none).
func (e FieldErrors) For(field string) string { return e[field] }

// scriptPlaceholder is an example script in the shell's own language,
// written as a comment so that it never reads as a script already there.
func scriptPlaceholder(shell string) string {
	switch shell {
	case "powershell", "pwsh":
		return "# e.g. Get-ComputerInfo | Select-Object CsName, OsVersion"
	case "cmd":
		return "REM e.g. ipconfig /all"
	case "sh":
		return "# e.g. df -h /; uptime"
	}
	return "Choose a shell first"
}

// unknownList names the unknown PCs of a preview, at most a few.
func unknownList(pcs []string) string {
	const shown = 5
	if len(pcs) <= shown {
		return strings.Join(pcs, ", ")
	}
	return strings.Join(pcs[:shown], ", ") + " …"
}
