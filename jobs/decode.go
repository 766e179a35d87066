package jobs

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/kanadehq/kanade/agent/wire"
)

// decoder walks a node tree into the manifest types, collecting every
// problem instead of stopping at the first.
type decoder struct {
	problems []Problem
}

func (d *decoder) add(field string, line int, format string, args ...any) {
	d.problems = append(d.problems, Problem{Field: field, Line: line, Message: fmt.Sprintf(format, args...)})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// standardTags are the YAML tags a manifest may carry.
var standardTags = map[string]bool{
	"!!str": true, "!!int": true, "!!float": true, "!!bool": true, "!!null": true,
	"!!map": true, "!!seq": true, "!!timestamp": true,
}

// skipped reports whether n was already reported by checkAliases (an
// alias, or a node with a tag that is not supported), so that the
// decoder does not report it a second time.
func skipped(n *yaml.Node) bool {
	return n.Kind == yaml.AliasNode || !standardTags[n.ShortTag()]
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// checkAliases reports anchors, aliases, merge keys and unsupported tags
// anywhere in the tree.
func (d *decoder) checkAliases(root *yaml.Node) {
	var walk func(path string, n *yaml.Node)
	walk = func(path string, n *yaml.Node) {
		if n.Anchor != "" && n.Kind != yaml.AliasNode {
			d.add(path, n.Line, "anchors (&%s) are not supported: write the value out in full", n.Anchor)
		}
		switch {
		case n.Kind == yaml.AliasNode:
			d.add(path, n.Line, "aliases (*%s) are not supported: write the value out in full", n.Value)
			return
		case !standardTags[n.ShortTag()]:
			d.add(path, n.Line, "the YAML tag %s is not supported", n.Tag)
		}
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.ShortTag() == "!!merge" {
					d.add(path, k.Line, "merge keys (<<) are not supported: write the fields out in full")
					continue
				}
				walk(join(path, k.Value), v)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(index(path, i), c)
			}
		}
	}
	walk("", root)
}

// describe names what a node is, for "must be X, not Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!null":
		return "empty"
	case "!!bool":
		return n.Value
	case "!!int", "!!float":
		return "the number " + n.Value
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:40]) + "…"
	}
	return "the text " + strconv.Quote(v)
}

// fields is a mapping whose keys were checked.
type fields struct {
	path string
	line int // where "is required" problems point: the mapping's key line
	vals map[string]*yaml.Node
	keys map[string]int // line of each key
	// meant holds the known keys that an unknown key was probably meant
	// to be; they are not reported missing a second time.
	meant map[string]bool
}

// field returns the path of a key of f.
func (f fields) field(name string) string { return join(f.path, name) }

// get returns the value of name, or nil when it is absent or empty.
func (f fields) get(name string) *yaml.Node {
	v := f.vals[name]
	if v == nil || isNull(v) {
		return nil
	}
	return v
}

// require returns the value of name, or reports it missing.
func (d *decoder) require(f fields, name, what string) *yaml.Node {
	if v := f.get(name); v != nil {
		return v
	}
	if f.vals == nil || f.meant[name] { // not a mapping, or a typo: already reported
		return nil
	}
	line := f.line
	if v := f.vals[name]; v != nil {
		line = v.Line
	}
	d.add(f.field(name), line, "is required: %s", what)
	return nil
}

// mapping checks that n is a mapping with only known, unique keys. hints
// explain keys that people (or the original kanade) commonly write.
func (d *decoder) mapping(path string, n *yaml.Node, line int, known []string, hints map[string]string) fields {
	f := fields{path: path, line: line}
	if skipped(n) {
		return f
	}
	if n.Kind != yaml.MappingNode {
		what := "must be a mapping of " + strings.Join(known, ", ")
		if path == "" {
			what = "a manifest is a mapping of fields such as id, version, target and execute"
		}
		d.add(path, n.Line, "%s, not %s", what, describe(n))
		return f
	}
	f.vals, f.keys = map[string]*yaml.Node{}, map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.ShortTag() == "!!merge" { // reported by checkAliases
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.add(path, k.Line, "keys must be plain names, not %s", describe(k))
			continue
		}
		name := k.Value
		if !contains(known, name) {
			msg, meant := unknownMessage(name, known, hints)
			d.add(join(path, name), k.Line, "%s", msg)
			if meant != "" {
				if f.meant == nil {
					f.meant = map[string]bool{}
				}
				f.meant[meant] = true
			}
			continue
		}
		if first, dup := f.keys[name]; dup {
			if first > 0 {
				d.add(join(path, name), k.Line, "is set twice (first on line %d)", first)
			} else {
				d.add(join(path, name), k.Line, "is set twice")
			}
			continue
		}
		f.keys[name] = k.Line
		f.vals[name] = v
	}
	return f
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// unknownMessage explains an unknown key, with a hint or the closest
// known key (returned as meant).
func unknownMessage(name string, known []string, hints map[string]string) (msg, meant string) {
	msg = "unknown field " + strconv.Quote(name)
	if h, ok := hints[name]; ok {
		return msg + ": " + h, ""
	}
	best, bestD := "", 3
	for _, k := range known {
		if k == "kind" {
			continue
		}
		if dd := distance(strings.ToLower(name), k); dd < bestD {
			best, bestD = k, dd
		}
	}
	if best != "" {
		return msg + ": did you mean " + strconv.Quote(best) + "?", best
	}
	var list []string
	for _, k := range known {
		if k != "kind" {
			list = append(list, k)
		}
	}
	return msg + "; the fields here are " + strings.Join(list, ", "), ""
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// text reads a scalar as written. Numbers and dates count as text;
// true/false, empty values, lists and mappings do not.
func (d *decoder) text(field string, v *yaml.Node) (string, bool) {
	if skipped(v) {
		return "", false
	}
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!str", "!!int", "!!float", "!!timestamp":
			return v.Value, true
		}
	}
	d.add(field, v.Line, "must be text, not %s", describe(v))
	return "", false
}

// boolean reads true or false.
func (d *decoder) boolean(field string, v *yaml.Node) bool {
	if skipped(v) {
		return false
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!bool" {
		b, err := strconv.ParseBool(strings.ToLower(v.Value))
		if err == nil {
			return b
		}
	}
	d.add(field, v.Line, "must be true or false, not %s", describe(v))
	return false
}

// integer reads a whole number.
func (d *decoder) integer(field string, v *yaml.Node) (int, bool) {
	if skipped(v) {
		return 0, false
	}
	if v.Kind == yaml.ScalarNode {
		switch v.ShortTag() {
		case "!!int":
			n, err := strconv.ParseInt(strings.ReplaceAll(v.Value, "_", ""), 0, 32)
			if err != nil {
				d.add(field, v.Line, "%s is too large", v.Value)
				return 0, false
			}
			return int(n), true
		case "!!float":
			d.add(field, v.Line, "must be a whole number, not %s", v.Value)
			return 0, false
		}
	}
	d.add(field, v.Line, "must be a whole number, not %s", describe(v))
	return 0, false
}

// duration reads a Go duration string ("30s", "10m", "1h30m").
func (d *decoder) duration(field string, v *yaml.Node) (wire.Duration, bool) {
	if skipped(v) {
		return 0, false
	}
	if v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!int" || v.ShortTag() == "!!float") {
		d.add(field, v.Line, "%s has no unit: write a duration such as \"%ss\", \"10m\" or \"1h30m\"", v.Value, v.Value)
		return 0, false
	}
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
		d.add(field, v.Line, "must be a duration such as \"30s\", \"10m\" or \"1h30m\", not %s", describe(v))
		return 0, false
	}
	dur, err := time.ParseDuration(strings.TrimSpace(v.Value))
	if err != nil {
		msg := fmt.Sprintf("%q is not a duration: write one such as \"30s\", \"10m\" or \"1h30m\"", v.Value)
		if strings.HasSuffix(strings.TrimSpace(v.Value), "d") {
			msg += " (there is no unit for days: 7 days is \"168h\")"
		}
		d.add(field, v.Line, "%s", msg)
		return 0, false
	}
	if dur < 0 {
		d.add(field, v.Line, "must not be negative")
		return 0, false
	}
	return wire.Duration(dur), true
}

// idList reads a list of ids, each checked by check; duplicates are
// problems. An empty list reads as nil.
func (d *decoder) idList(field string, v *yaml.Node, check func(string) error) []string {
	if skipped(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		hint := ""
		if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
			hint = fmt.Sprintf(" (write [%s])", v.Value)
		}
		d.add(field, v.Line, "must be a list, not %s%s", describe(v), hint)
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for i, e := range v.Content {
		f := index(field, i)
		s, ok := d.text(f, e)
		if !ok {
			continue
		}
		if err := check(s); err != nil {
			d.add(f, e.Line, "%s", err.Error())
		} else if seen[s] {
			d.add(f, e.Line, "%q is listed twice", s)
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out
}

// checkID checks an id (a subject token).
func checkID(s string) error {
	if err := wire.ValidateID("x", s); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "x "))
	}
	return nil
}

// checkGroup checks a group name (a lower-case subject token).
func checkGroup(s string) error {
	if err := wire.ValidateGroup(s); err != nil {
		return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "group "))
	}
	return nil
}

// checkVersion checks a version: 1–64 printable characters without spaces.
func checkVersion(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("is empty")
	case len(s) > 64:
		return fmt.Errorf("is longer than 64 characters")
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return fmt.Errorf("%q must not contain spaces or control characters", s)
		}
	}
	return nil
}

// parsePercent reads "10%" (0–100).
func parsePercent(s string) (int, bool) {
	num, ok := strings.CutSuffix(s, "%")
	if !ok || num == "" || strings.ContainsAny(num, "+- ") {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || n > 100 {
		return 0, false
	}
	return n, true
}

// threshold reads a count (3) or a percentage ("10%"). minCount is the
// smallest count allowed.
func (d *decoder) threshold(field string, v *yaml.Node, minCount int) *Threshold {
	if skipped(v) {
		return nil
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!int" {
		n, ok := d.integer(field, v)
		if !ok {
			return nil
		}
		if n < minCount {
			d.add(field, v.Line, "must be at least %d", minCount)
			return nil
		}
		return &Threshold{N: n}
	}
	if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
		if n, ok := parsePercent(strings.TrimSpace(v.Value)); ok {
			return &Threshold{N: n, Percent: true}
		}
	}
	d.add(field, v.Line, "must be a number of targets such as 3, or a percentage from 0%% to 100%% such as \"10%%\", not %s", describe(v))
	return nil
}
