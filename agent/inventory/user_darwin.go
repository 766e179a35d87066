package inventory

import (
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// loggedOnUser is the owner of /dev/console: the user at the screen (root
// while the login window shows).
func loggedOnUser() string {
	fi, err := os.Stat("/dev/console")
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return ""
	}
	u, err := user.LookupId(strconv.FormatUint(uint64(st.Uid), 10))
	if err != nil {
		return ""
	}
	return u.Username
}
