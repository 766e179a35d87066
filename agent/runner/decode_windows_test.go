//go:build windows

package runner

import (
	"testing"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
)

func TestLegacyEncoding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cps  []uint32
		want encoding.Encoding
	}{
		{nil, nil},
		{[]uint32{65001}, nil},
		{[]uint32{65001, 932, 1252}, japanese.ShiftJIS},
		{[]uint32{737, 1253}, charmap.Windows1253}, // OEM 737 (Greek) is not known; its ANSI code page is
		{[]uint32{850, 1252}, charmap.CodePage850},
	}
	for _, tt := range tests {
		if got := legacyEncoding(tt.cps...); got != tt.want {
			t.Errorf("legacyEncoding(%v) = %v, want %v", tt.cps, got, tt.want)
		}
	}
}
