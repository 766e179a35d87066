package outbox

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestOutbox_OrderSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	o, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b", "c"} {
		if err := o.Put("results.x."+s, []byte(`{"v":"`+s+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	items, _ := o.Pending()
	if err := o.Remove(items[0]); err != nil {
		t.Fatal(err)
	}
	o2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := o2.Put("results.x.d", []byte("d")); err != nil {
		t.Fatal(err)
	}
	items, err = o2.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, it.Subject)
	}
	if diff := cmp.Diff([]string{"results.x.b", "results.x.c", "results.x.d"}, got); diff != "" {
		t.Errorf("Pending subjects (-want +got):\n%s", diff)
	}
	if string(items[0].Data) != `{"v":"b"}` {
		t.Errorf("data = %q", items[0].Data)
	}
	if err := o2.Put("bad\nsubject", nil); err == nil {
		t.Error("Put with newline in subject succeeded")
	}
}
