package static

import (
	"io/fs"
	"strings"
	"testing"
)

func TestFS(t *testing.T) {
	tests := []struct {
		name     string
		contains string // a string the file must contain
	}{
		{HTMX, "htmx"},
		{SSE, `defineExtension("sse"`},
		{CSS, ".htmx-indicator"},
		{JS, "htmx:sseOpen"},
		{Favicon, "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := fs.ReadFile(FS, tt.name)
			if err != nil {
				t.Fatalf("ReadFile(%q): %v", tt.name, err)
			}
			if !strings.Contains(string(b), tt.contains) {
				t.Errorf("%s does not contain %q", tt.name, tt.contains)
			}
		})
	}
}

// TestFS_Sizes guards against an accidental truncation or a swapped
// build of the vendored files (npm dist sizes of the pinned versions).
func TestFS_Sizes(t *testing.T) {
	want := map[string]int{HTMX: 52182, SSE: 2853}
	for name, n := range want {
		b, err := fs.ReadFile(FS, name)
		if err != nil {
			t.Fatalf("ReadFile(%q): %v", name, err)
		}
		if len(b) != n {
			t.Errorf("len(%s) = %d, want %d", name, len(b), n)
		}
	}
}
