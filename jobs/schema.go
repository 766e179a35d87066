package jobs

import (
	"bytes"
	_ "embed"
)

//go:embed schema.json
var schema []byte

// Schema returns the JSON Schema (draft 2020-12) of manifest and schedule
// files, for editors and for the API (/api/schemas/manifest.json). The
// parser is the reference; the schema says what a schema can.
func Schema() []byte { return bytes.Clone(schema) }
