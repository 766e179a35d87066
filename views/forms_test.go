package views

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The preview names the unknown PCs and carries the question and the
// shell that static/kanade.js reads.
func TestRunPreview_UnknownAndQuestion(t *testing.T) {
	p := RunPreviewModel{Matched: 40, Online: 38, Unknown: []string{"PC-TYPO-99"}, Shell: "powershell", Confirm: "Run on 40 PCs?"}
	_, doc := render(t, RunPreview(p))
	root := find(doc, byAttr("id", "run-preview"))[0]
	got := map[string]string{"text": strings.Join(strings.Fields(text(root)), " ")}
	for _, k := range []string{"data-confirm", "data-shell", "data-shell-hint"} {
		got[k], _ = attr(root, k)
	}
	want := map[string]string{"text": "40 agents match, 38 online 1 unknown: PC-TYPO-99 updating…", "data-confirm": "Run on 40 PCs?",
		"data-shell": "powershell", "data-shell-hint": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("preview (-want +got):\n%s", diff)
	}
}

// PCs of different systems: no shell is chosen, a hint asks for one, and
// each shell's option carries its placeholder.
func TestRunPage_MixedShells(t *testing.T) {
	m := sampleRun()
	m.Shell, m.ShellHint, m.Title = "", "These PCs run Linux and Windows: choose the shell for them all.", "INC-1"
	_, doc := render(t, RunPage(sampleLayout("run"), m))
	sel := find(doc, byAttr("name", "shell"))[0]
	var selected []string
	placeholders := map[string]string{}
	for _, o := range find(sel, byTag("option")) {
		v, _ := attr(o, "value")
		if _, ok := attr(o, "selected"); ok {
			selected = append(selected, v)
		}
		placeholders[v], _ = attr(o, "data-placeholder")
	}
	if len(selected) != 1 || selected[0] != "" {
		t.Errorf("selected options %q, want only the empty one", selected)
	}
	if !strings.Contains(placeholders["powershell"], "Get-") || !strings.Contains(placeholders["sh"], "# e.g.") || !strings.HasPrefix(placeholders["cmd"], "REM e.g.") {
		t.Errorf("placeholders %q", placeholders)
	}
	hint := find(doc, byAttr("data-testid", "shell-hint"))
	if len(hint) != 1 || text(hint[0]) != m.ShellHint {
		t.Errorf("shell hint missing")
	} else if _, hidden := attr(hint[0], "hidden"); hidden {
		t.Errorf("shell hint hidden")
	}
	if ta := find(doc, byAttr("name", "script"))[0]; func() string { v, _ := attr(ta, "placeholder"); return v }() != scriptPlaceholder("") {
		t.Errorf("the script's placeholder with no shell chosen")
	}
	if in := find(doc, byAttr("name", "title")); len(in) != 1 {
		t.Errorf("%d title inputs", len(in))
	} else if v, _ := attr(in[0], "value"); v != "INC-1" {
		t.Errorf("title = %q", v)
	}
}

// Placeholders of the forms read as examples.
func TestScriptPlaceholder(t *testing.T) {
	for _, sh := range []string{"sh", "cmd", "powershell", "pwsh"} {
		if p := scriptPlaceholder(sh); !strings.Contains(p, "e.g. ") {
			t.Errorf("scriptPlaceholder(%s) = %q", sh, p)
		}
	}
}
