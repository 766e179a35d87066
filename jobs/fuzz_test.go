package jobs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzParse checks that the parser never panics, that every problem says
// something, and that a valid file written back out (as JSON, which is
// also YAML) reads back the same.
//
//	go test ./jobs -run '^$' -fuzz FuzzParse -fuzztime 60s
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"*.yaml", filepath.Join("testdata", "*.yaml")} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, name := range files {
			data, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(`{"id":"j","version":"1","target":{"all":true},"execute":{"shell":"sh","script":"x","timeout":"1s"}}`))
	f.Add([]byte("id: j\nversion: 1\ntarget: {pcs: [a, b]}\nexecute: {shell: cmd, script: \"a\\u2028b\", timeout: 1ns}\nrollout: {waves: [{name: w, count: 1, min_success: 1, max_failures: 0%}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{"fuzz.yaml", "fuzz.json"} {
			file, ps := ParseFile(name, data)
			for _, p := range ps {
				if p.Message == "" || p.Line < 0 {
					t.Fatalf("ParseFile(%s) gave a bad problem %#v", name, p)
				}
			}
			if len(ps) > 0 {
				continue
			}
			var v any = file.Manifest
			if file.Kind == KindSchedule {
				v = file.Schedule
			}
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("marshal %+v: %v", v, err)
			}
			for _, again := range []string{"again.json", "again.yaml"} {
				got, ps := ParseFile(again, b)
				if len(ps) > 0 {
					t.Fatalf("valid %s re-marshalled as %s:\n%s\nhas problems %v", name, again, b, ps)
				}
				if diff := cmp.Diff(file, got); diff != "" {
					t.Fatalf("valid %s re-marshalled as %s reads differently (-first +again):\n%s", name, again, diff)
				}
			}
		}
	})
}
