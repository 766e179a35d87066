//go:build !windows

package runner

import "golang.org/x/text/encoding"

// systemLegacy is nil off Windows: output that is not UTF-8 has no other
// encoding to try (Unix locales are UTF-8), so its invalid bytes become
// U+FFFD.
func systemLegacy() encoding.Encoding { return nil }
