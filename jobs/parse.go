package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ParseFile reads a job manifest or a schedule. A name ending in .json is
// read as JSON, anything else as YAML. The file is filled in as far as it
// could be read even when there are problems, so that a caller can still
// show its id and version.
func ParseFile(name string, data []byte) (File, []Problem) {
	if len(data) > MaxSize {
		return File{Kind: KindJob}, []Problem{{Message: fmt.Sprintf("the file has %d bytes; a manifest may have at most %d (%d KiB)", len(data), MaxSize, MaxSize>>10)}}
	}
	var root *yaml.Node
	var ps []Problem
	if strings.EqualFold(path.Ext(name), ".json") {
		root, ps = jsonNode(data)
	} else {
		root, ps = yamlNode(data)
	}
	if root == nil {
		return File{Kind: KindJob}, ps
	}
	d := &decoder{problems: ps}
	d.checkAliases(root)
	f := File{Kind: d.kind(root)}
	switch f.Kind {
	case KindSchedule:
		s := d.schedule(root)
		f.Schedule = &s
	default:
		m := d.manifest(root)
		f.Manifest = &m
	}
	sort.SliceStable(d.problems, func(i, j int) bool { return d.problems[i].Line < d.problems[j].Line })
	return f, d.problems
}

// Parse reads a job manifest (see ParseFile); a schedule is a problem.
func Parse(name string, data []byte) (Manifest, []Problem) {
	f, ps := ParseFile(name, data)
	return f.job(ps)
}

// ParseJSON reads a job manifest written as JSON (the API's deploy body),
// with the same rules as Parse. Problems have no line numbers.
func ParseJSON(data []byte) (Manifest, []Problem) {
	return Parse("manifest.json", data)
}

// ParseSchedule reads a schedule (see ParseFile); a job manifest is a
// problem.
func ParseSchedule(name string, data []byte) (Schedule, []Problem) {
	f, ps := ParseFile(name, data)
	if f.Kind != KindSchedule {
		return Schedule{}, append(ps, Problem{Field: "kind", Line: 1, Message: "this file is a job manifest, not a schedule"})
	}
	return *f.Schedule, ps
}

func (f File) job(ps []Problem) (Manifest, []Problem) {
	if f.Kind != KindJob {
		return Manifest{}, append(ps, Problem{Field: "kind", Line: 1, Message: "this file is a schedule, not a job manifest"})
	}
	if f.Manifest == nil {
		return Manifest{}, ps
	}
	return *f.Manifest, ps
}

// yamlLine finds the line in the YAML library's error messages.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlNode parses data into the root node of its one document.
func yamlNode(data []byte) (root *yaml.Node, ps []Problem) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := decodeDoc(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []Problem{{Line: 1, Message: "the file is empty: write a manifest with id, version, target and execute"}}
		}
		return nil, []Problem{syntaxProblem(err, data)}
	}
	var extra yaml.Node
	switch err := decodeDoc(dec, &extra); {
	case err == nil:
		ps = append(ps, Problem{Line: max(extra.Line, 1), Message: "a file holds one manifest: move each document after --- into a file of its own"})
	case !errors.Is(err, io.EOF):
		ps = append(ps, syntaxProblem(err, data))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, append(ps, Problem{Line: 1, Message: "the file is empty: write a manifest with id, version, target and execute"})
	}
	return doc.Content[0], ps
}

// decodeDoc decodes the next document, turning a panic of the YAML
// library on malformed input into an error.
func decodeDoc(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the file cannot be read as YAML (%v)", r)
		}
	}()
	return dec.Decode(n)
}

// syntaxProblem turns a YAML syntax error into a problem with its line.
func syntaxProblem(err error, data []byte) Problem {
	msg := err.Error()
	p := Problem{Line: 1, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		p.Message = "invalid YAML: " + m[2]
		// The YAML library counts lines from 0 in parser errors (as
		// opposed to scanner errors), which all read "did not find
		// expected …".
		if strings.HasPrefix(m[2], "did not find expected") {
			p.Line++
		}
	}
	if m := unknownAnchor.FindStringSubmatch(msg); m != nil {
		p.Line = lineOf(data, "*"+m[1])
		p.Message = "aliases (*" + m[1] + ") are not supported, and this one names no anchor"
	}
	if strings.Contains(msg, "found character that cannot start any token") || strings.Contains(msg, "found a tab character") {
		if line := lineText(data, p.Line); strings.Contains(line, "\t") {
			p.Message += " (tabs are not allowed for indentation in YAML: use spaces)"
		}
	}
	return p
}

// unknownAnchor matches the YAML library's error for an alias without
// an anchor, which has no line.
var unknownAnchor = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)

// lineOf returns the 1-based line of the first occurrence of s in data (1
// when there is none).
func lineOf(data []byte, s string) int {
	i := bytes.Index(data, []byte(s))
	if i < 0 {
		return 1
	}
	return 1 + bytes.Count(data[:i], []byte("\n"))
}

// lineText returns line n (1-based) of data.
func lineText(data []byte, n int) string {
	for i := 1; len(data) > 0; i++ {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		if i == n {
			return string(line)
		}
		data = rest
	}
	return ""
}

// jsonNode parses JSON into the same node tree as YAML (without lines),
// keeping the key order and duplicate keys so that the decoder reports
// them like YAML's.
func jsonNode(data []byte) (*yaml.Node, []Problem) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, []Problem{{Message: "the body is empty: send a manifest with id, version, target and execute"}}
	}
	n, err := readJSON(dec)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, []Problem{{Message: "invalid JSON: " + err.Error()}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, []Problem{{Message: "invalid JSON: more than one value: send one manifest"}}
	}
	if isNull(n) {
		return nil, []Problem{{Message: "the body is empty: send a manifest with id, version, target and execute"}}
	}
	return n, nil
}

func readJSON(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				v, err := readJSON(dec)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
			}
			_, err := dec.Token() // '}'
			return n, err
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for dec.More() {
				v, err := readJSON(dec)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, v)
			}
			_, err := dec.Token() // ']'
			return n, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}, nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(t.String(), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: t.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}
