package inventory

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	wtsapi32                        = windows.NewLazySystemDLL("wtsapi32.dll")
	procWTSQuerySessionInformationW = wtsapi32.NewProc("WTSQuerySessionInformationW")
)

// WTS_INFO_CLASS values of WTSQuerySessionInformationW.
const (
	wtsUserName   = 5
	wtsDomainName = 7
)

// noSession is what WTSGetActiveConsoleSessionId returns when no session
// is attached to the console.
const noSession = 0xFFFFFFFF

// wtsString reads one text field of a session ("" when it cannot).
func wtsString(session uint32, class uint32) string {
	if procWTSQuerySessionInformationW.Find() != nil {
		return ""
	}
	var buf *uint16
	var n uint32
	r, _, _ := procWTSQuerySessionInformationW.Call(0, uintptr(session), uintptr(class), uintptr(unsafe.Pointer(&buf)), uintptr(unsafe.Pointer(&n)))
	if r == 0 || buf == nil {
		return ""
	}
	defer windows.WTSFreeMemory(uintptr(unsafe.Pointer(buf)))
	return windows.UTF16PtrToString(buf)
}

// sessionUser is "DOMAIN\user" (or "user") of a session, "" for none.
func sessionUser(session uint32) string {
	u := wtsString(session, wtsUserName)
	if u == "" {
		return ""
	}
	if d := wtsString(session, wtsDomainName); d != "" {
		return d + `\` + u
	}
	return u
}

// loggedOnUser is the console session's user, else the first active
// remote (RDP) session's.
func loggedOnUser() string {
	var ss []loginSession
	if id := windows.WTSGetActiveConsoleSessionId(); id != noSession {
		ss = append(ss, loginSession{User: sessionUser(id), Local: true, Active: true})
	}
	var info *windows.WTS_SESSION_INFO
	var count uint32
	if windows.WTSEnumerateSessions(0, 0, 1, &info, &count) == nil {
		defer windows.WTSFreeMemory(uintptr(unsafe.Pointer(info)))
		for _, s := range unsafe.Slice(info, count) {
			if s.State == windows.WTSActive && s.SessionID != windows.WTSGetActiveConsoleSessionId() {
				ss = append(ss, loginSession{User: sessionUser(s.SessionID), Active: true, Remote: true})
			}
		}
	}
	return pickUser(ss)
}
