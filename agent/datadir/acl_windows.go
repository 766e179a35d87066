package datadir

import (
	"fmt"

	"golang.org/x/sys/windows"
)

// protect gives dir a protected DACL (nothing inherited from its parent)
// that grants full control to SYSTEM and Administrators only, inherited
// by everything inside. The user the agent runs as is added when it is
// neither (an unelevated agent run by hand), or it would lock itself
// out. SetNamedSecurityInfo also re-applies the inherited entries to
// files already in dir.
func protect(dir string) ([]string, error) {
	sddl, err := DACL()
	if err != nil {
		return nil, err
	}
	sd, err := windows.SecurityDescriptorFromString(sddl)
	if err != nil {
		return nil, fmt.Errorf("security descriptor %s: %w", sddl, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return nil, err
	}
	if err := windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil); err != nil {
		return nil, fmt.Errorf("set its access control list: %w (run as Administrator, or choose another --data)", err)
	}
	return nil, nil
}

// DACL is the data directory's access control list in SDDL: full file
// access (FA), inherited by files and subdirectories (OICI), for SYSTEM
// (SY) and Administrators (BA), plus the current user when the process
// is not elevated; P marks it protected.
func DACL() (string, error) {
	sddl := "D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
	tok := windows.GetCurrentProcessToken()
	if tok.IsElevated() {
		return sddl, nil
	}
	u, err := tok.GetTokenUser()
	if err != nil {
		return "", fmt.Errorf("current user: %w", err)
	}
	return sddl + "(A;OICI;FA;;;" + u.User.Sid.String() + ")", nil
}
