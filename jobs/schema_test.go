package jobs

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
)

type schemaDoc struct {
	Schema string                     `json:"$schema"`
	Defs   map[string]json.RawMessage `json:"$defs"`
}

func loadSchema(t *testing.T) (schemaDoc, map[string]map[string]json.RawMessage) {
	t.Helper()
	var doc schemaDoc
	if err := json.Unmarshal(Schema(), &doc); err != nil {
		t.Fatalf("Schema() is not valid JSON: %v", err)
	}
	props := map[string]map[string]json.RawMessage{}
	for name, raw := range doc.Defs {
		var d struct {
			Properties map[string]json.RawMessage `json:"properties"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("$defs/%s: %v", name, err)
		}
		if d.Properties != nil {
			props[name] = d.Properties
		}
	}
	return doc, props
}

func TestSchema_Valid(t *testing.T) {
	doc, _ := loadSchema(t)
	if doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %q", doc.Schema)
	}
	// Every $ref points at a definition.
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				if k == "$ref" {
					refs = append(refs, c.(string))
				}
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	var all any
	if err := json.Unmarshal(Schema(), &all); err != nil {
		t.Fatal(err)
	}
	walk(all)
	if len(refs) == 0 {
		t.Fatal("no $ref in the schema")
	}
	for _, r := range refs {
		name, ok := strings.CutPrefix(r, "#/$defs/")
		if _, def := doc.Defs[name]; !ok || !def {
			t.Errorf("$ref %q points nowhere", r)
		}
	}
}

// TestSchema_MatchesParser checks that each object of the schema has
// exactly the keys the parser accepts, and every field of the Go types.
func TestSchema_MatchesParser(t *testing.T) {
	_, props := loadSchema(t)
	tests := []struct {
		def  string
		keys []string
		typ  any
	}{
		{"job", manifestKeys, Manifest{}},
		{"schedule", scheduleKeys, Schedule{}},
		{"target", targetKeys, Target{}},
		{"execute", executeKeys, Execute{}},
		{"rollout", rolloutKeys, Rollout{}},
		{"wave", waveKeys, Wave{}},
	}
	for _, tt := range tests {
		t.Run(tt.def, func(t *testing.T) {
			var got []string
			for k := range props[tt.def] {
				got = append(got, k)
			}
			want := append([]string(nil), tt.keys...)
			sort.Strings(got)
			sort.Strings(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("$defs/%s properties (-parser +schema):\n%s", tt.def, diff)
			}
			rt := reflect.TypeOf(tt.typ)
			for i := 0; i < rt.NumField(); i++ {
				name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
				if _, ok := props[tt.def][name]; !ok {
					t.Errorf("%s.%s (json %q) is not in $defs/%s", rt.Name(), rt.Field(i).Name, name, tt.def)
				}
			}
		})
	}
}

// TestSchema_SampleFields checks that every field name used by a sample
// is in the schema.
func TestSchema_SampleFields(t *testing.T) {
	_, props := loadSchema(t)
	known := map[string]bool{}
	for _, p := range props {
		for k := range p {
			known[k] = true
		}
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("only %d samples", len(files))
	}
	for _, f := range files {
		var n yaml.Node
		if err := yaml.Unmarshal(mustRead(t, f), &n); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var walk func(*yaml.Node)
		walk = func(n *yaml.Node) {
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if !known[n.Content[i].Value] {
						t.Errorf("%s line %d: field %q is not in the schema", f, n.Content[i].Line, n.Content[i].Value)
					}
				}
			}
			for _, c := range n.Content {
				walk(c)
			}
		}
		walk(&n)
	}
}
