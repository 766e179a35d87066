package jobs

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// update rewrites the golden files: go test ./jobs -run TestGolden -update
var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

// golden is the normalised form of a parsed file that the golden files hold.
type golden struct {
	Kind     Kind      `json:"kind"`
	Manifest *Manifest `json:"manifest,omitempty"`
	Schedule *Schedule `json:"schedule,omitempty"`
	Problems []Problem `json:"problems"`
}

func normalise(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	f, ps := ParseFile(name, data)
	if ps == nil {
		ps = []Problem{}
	}
	b, err := json.MarshalIndent(golden{Kind: f.Kind, Manifest: f.Manifest, Schedule: f.Schedule, Problems: ps}, "", "  ")
	if err != nil {
		t.Fatalf("marshal %s: %v", name, err)
	}
	return append(b, '\n')
}

// inputs lists the samples (jobs/*.yaml) and the test inputs
// (testdata/*.yaml) with the golden file of each.
func inputs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, pattern := range []string{"*.yaml", filepath.Join("testdata", "*.yaml")} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			g := filepath.Join("testdata", strings.TrimSuffix(filepath.Base(f), ".yaml")+".golden.json")
			for in, other := range out {
				if other == g {
					t.Fatalf("%s and %s would share the golden file %s: rename one", in, f, g)
				}
			}
			out[f] = g
		}
	}
	return out
}

func TestGolden(t *testing.T) {
	in := inputs(t)
	if len(in) < 20 {
		t.Fatalf("found only %d inputs", len(in))
	}
	for src, gold := range in {
		t.Run(src, func(t *testing.T) {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			got := normalise(t, src, data)
			if *update {
				if err := os.WriteFile(gold, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(gold)
			if err != nil {
				t.Fatalf("%v (run go test ./jobs -run TestGolden -update)", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("ParseFile(%s) differs from %s (-want +got):\n%s", src, gold, diff)
			}
		})
	}
}

// TestGolden_NoStale fails when a golden file has no input any more.
func TestGolden_NoStale(t *testing.T) {
	want := map[string]bool{}
	for _, g := range inputs(t) {
		want[g] = true
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !want[f] {
			t.Errorf("%s has no input file: delete it", f)
		}
	}
}

// TestSamples_Valid checks that every sample in jobs/ parses without a
// problem, and that the original kanade's samples are there.
func TestSamples_Valid(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pf, ps := ParseFile(f, data)
		if len(ps) > 0 {
			t.Errorf("ParseFile(%s) problems: %v", f, ps)
		}
		if other, dup := ids[pf.ID()]; dup {
			t.Errorf("%s and %s share the id %q", f, other, pf.ID())
		}
		ids[pf.ID()] = f
		if bytes.Contains(data, []byte("\t")) {
			t.Errorf("%s contains a tab", f)
		}
	}
	want := map[string]Kind{"echo-test.yaml": KindJob, "wave-test.yaml": KindJob, "schedule-test.yaml": KindSchedule}
	for f, kind := range want {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("original sample: %v", err)
		}
		if pf, _ := ParseFile(f, data); pf.Kind != kind {
			t.Errorf("ParseFile(%s).Kind = %q, want %q", f, pf.Kind, kind)
		}
	}
	// The schedule sample names a job that is a sample too.
	s, _ := ParseSchedule("schedule-test.yaml", mustRead(t, "schedule-test.yaml"))
	if _, ok := ids[s.JobID]; !ok {
		t.Errorf("schedule-test.yaml names job %q, which no sample defines", s.JobID)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
