package wire

import (
	"fmt"
	"strings"
)

// MaxIDLen is the longest ID that may be used as a subject token.
const MaxIDLen = 64

// ValidateID reports whether s can be used as one NATS subject token:
// 1–64 characters from [A-Za-z0-9_-]. field names the ID in the error.
func ValidateID(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if len(s) > MaxIDLen {
		return fmt.Errorf("%s %q is longer than %d characters", field, s, MaxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if !idChar(s[i]) {
			return fmt.Errorf("%s %q has %q at position %d: use only letters, digits, '-' and '_'", field, s, s[i], i+1)
		}
	}
	return nil
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// PCIDFromHostname derives a pc_id from a host name: the name is cut at
// the first dot ("pc1.corp.example" → "pc1"). The result still has to pass
// ValidateID; host names with other odd characters need an explicit pc_id.
func PCIDFromHostname(host string) string {
	if i := strings.IndexByte(host, '.'); i >= 0 {
		host = host[:i]
	}
	return host
}
