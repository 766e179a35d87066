package web

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCapChunk(t *testing.T) {
	tests := []struct {
		name, data string
		max        int
		want       string
	}{
		{"short", "hello", 8, "hello"},
		{"exact", "12345678", 8, "12345678"},
		{"long", "123456789", 8, "12345678\n[kanade: 1 more bytes of this chunk are not shown live]\n"},
		{"cut inside a character", "1234567€", 8, "1234567\n[kanade: 3 more bytes of this chunk are not shown live]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := capChunk(tt.data, tt.max)
			if got != tt.want {
				t.Errorf("capChunk(%q, %d) = %q, want %q", tt.data, tt.max, got, tt.want)
			}
			if !utf8.ValidString(got) {
				t.Errorf("capChunk(%q, %d) = %q is not valid UTF-8", tt.data, tt.max, got)
			}
			if kept, _, _ := strings.Cut(got, "\n[kanade:"); len(kept) > tt.max {
				t.Errorf("capChunk(%q, %d) kept %d bytes", tt.data, tt.max, len(kept))
			}
		})
	}
}
