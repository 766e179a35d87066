package components

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNumber(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{0, "0"}, {12, "12"}, {999, "999"}, {1000, "1,000"}, {1240, "1,240"}, {1234567, "1,234,567"}, {-1240, "-1,240"},
	}
	for _, tt := range tests {
		if got := Number(tt.n); got != tt.want {
			t.Errorf("Number(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestLabel(t *testing.T) {
	tests := []struct{ state, want string }{
		{"timed_out", "timed out"}, {"awaiting_approval", "awaiting approval"}, {"failed", "failed"}, {"", "unknown"},
	}
	for _, tt := range tests {
		if got := Label(tt.state); got != tt.want {
			t.Errorf("Label(%q) = %q, want %q", tt.state, got, tt.want)
		}
	}
}

func TestRects(t *testing.T) {
	tests := []struct {
		name string
		segs []Segment
		want []rect
	}{
		{"empty", []Segment{{"pending", 0}}, nil},
		{"split", []Segment{{"pending", 1}, {"running", 0}, {"succeeded", 3}}, []rect{{"pending", "0.00", "250.00"}, {"succeeded", "250.00", "750.00"}}},
		{"thirds", []Segment{{"a", 1}, {"b", 1}, {"c", 1}}, []rect{{"a", "0.00", "333.33"}, {"b", "333.33", "333.33"}, {"c", "666.67", "333.33"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rects(tt.segs)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("rects (-want +got):\n%s", diff)
			}
			sum := 0.0
			for _, r := range got {
				w, _ := strconv.ParseFloat(r.Width, 64)
				sum += w
			}
			if len(got) > 0 && (sum < 999.9 || sum > 1000.1) {
				t.Errorf("widths sum to %v, want 1000", sum)
			}
		})
	}
}

func TestProgressBar_Label(t *testing.T) {
	var buf bytes.Buffer
	segs := []Segment{{"succeeded", 1200}, {"failed", 40}, {"skipped", 0}}
	if err := ProgressBar(segs, false).Render(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	want := `aria-label="1,200 succeeded, 40 failed of 1,240"`
	if !strings.Contains(buf.String(), want) {
		t.Errorf("ProgressBar = %s, want it to contain %s", buf.String(), want)
	}
	if n := strings.Count(buf.String(), "<rect"); n != 2 {
		t.Errorf("%d <rect>, want 2", n)
	}
}

func TestPager(t *testing.T) {
	tests := []struct {
		name      string
		p         PagerProps
		wantLinks int
		wantEmpty bool
	}{
		{"none", PagerProps{}, 0, true},
		{"first page", PagerProps{Total: 120, From: 1, To: 50, NextURL: "/x?offset=50"}, 1, false},
		{"middle", PagerProps{Total: 120, From: 51, To: 100, PrevURL: "/x", NextURL: "/x?offset=100"}, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Pager(tt.p).Render(context.Background(), &buf); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if (out == "") != tt.wantEmpty {
				t.Errorf("Pager(%+v) = %q, want empty %v", tt.p, out, tt.wantEmpty)
			}
			if n := strings.Count(out, "<a "); n != tt.wantLinks {
				t.Errorf("Pager(%+v) has %d links, want %d", tt.p, n, tt.wantLinks)
			}
		})
	}
}
