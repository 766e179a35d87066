package wire

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// architectureDoc is the document whose wire table lists Contract().
var architectureDoc = filepath.Join("..", "..", "docs", "ARCHITECTURE.md")

// wireTable reads the table of the "## The wire" section of a markdown
// document: each row's family name (first cell) and the first subject
// written in backquotes in its second cell.
func wireTable(t *testing.T, doc string) (order []string, pattern map[string]string) {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	pattern = map[string]string{}
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.TrimSpace(line) == "## The wire"
			continue
		case !in || !strings.HasPrefix(line, "|"):
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 3 {
			continue
		}
		name := strings.TrimSpace(cells[0])
		if name == "family" || strings.Trim(name, "-: ") == "" {
			continue // the header and its rule
		}
		subj := ""
		if _, rest, ok := strings.Cut(cells[1], "`"); ok {
			subj, _, _ = strings.Cut(rest, "`")
		}
		if _, dup := pattern[name]; dup {
			t.Errorf("%s: the wire table lists family %q twice", doc, name)
		}
		order = append(order, name)
		pattern[name] = subj
	}
	if len(order) == 0 {
		t.Fatalf("%s has no table under \"## The wire\"", doc)
	}
	return order, pattern
}

// TestArchitectureDoc_WireTable keeps the wire table of
// docs/ARCHITECTURE.md equal to Contract(): every family with its
// pattern as the first subject of its row, in the same order, and no row
// for a family the contract does not have.
func TestArchitectureDoc_WireTable(t *testing.T) {
	order, pattern := wireTable(t, architectureDoc)
	inContract := map[string]bool{}
	var names []string
	for _, c := range Contract() {
		inContract[c.Name] = true
		names = append(names, c.Name)
		got, ok := pattern[c.Name]
		switch {
		case !ok:
			t.Errorf("docs/ARCHITECTURE.md: the wire table has no row for family %q (`%s`) of wire.Contract()", c.Name, c.Pattern)
		case got != c.Pattern:
			t.Errorf("docs/ARCHITECTURE.md: the wire table gives family %q the subject `%s`, wire.Contract() `%s`", c.Name, got, c.Pattern)
		}
	}
	for _, name := range order {
		if !inContract[name] {
			t.Errorf("docs/ARCHITECTURE.md: the wire table lists family %q, which wire.Contract() does not have", name)
		}
	}
	if !t.Failed() && strings.Join(order, ",") != strings.Join(names, ",") {
		t.Errorf("docs/ARCHITECTURE.md: the wire table's order\n  %s\ndiffers from wire.Contract()'s\n  %s", strings.Join(order, ", "), strings.Join(names, ", "))
	}
}
