package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Limits that keep a hostile or broken file from costing more than a bad
// error message. goccy's parser is quadratic in nesting depth, so depth is
// checked on the tokens before parsing; aliases can multiply a small file
// into a huge value, so decoding counts the values it produces.
const (
	maxDepth  = 32      // nesting levels; a real config needs about 7
	minValues = 1 << 18 // values a file may decode to, counting alias expansions,
	// or one per two bytes of the file if that is more: a large file of
	// plain values (100,000 destinations) loads, a small alias bomb stops early
	maxHops = 16 // anchor, alias and tag wrappers around one value
)

// parseYAML turns the text into the body of its single document, or nil
// for an empty file. Syntax errors carry goccy's line and column.
func parseYAML(name string, data []byte) (body ast.Node, err error) {
	defer func() {
		// goccy is a third-party parser fed with arbitrary input; a bug in
		// it must become an error, never a crashed server.
		if r := recover(); r != nil {
			body, err = nil, &Error{File: name, Message: fmt.Sprintf("the YAML parser failed on this file: %v", r)}
		}
	}()
	tokens := lexer.Tokenize(string(data))
	if tk, msg := checkTokens(tokens); tk != nil {
		at := posOf(tk)
		return nil, &Error{File: name, Line: at.line, Column: at.col, Message: msg}
	}
	file, err := parser.Parse(tokens, 0)
	if err != nil {
		return nil, syntaxError(name, err)
	}
	for _, doc := range file.Docs {
		if doc == nil || emptyBody(doc.Body) {
			continue
		}
		if body != nil {
			at := posOf(doc.Start)
			if at.line == 0 {
				at = nodePos(doc.Body)
			}
			return nil, &Error{File: name, Line: at.line, Column: at.col,
				Message: "a config file holds one YAML document; this is a second one"}
		}
		body = doc.Body
	}
	return body, nil
}

// syntaxError converts goccy's error, keeping its position but not its
// multi-line source excerpt.
func syntaxError(name string, err error) error {
	var ye interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if !errors.As(err, &ye) {
		return &Error{File: name, Message: "invalid YAML: " + err.Error()}
	}
	at := posOf(ye.GetToken())
	return &Error{File: name, Line: at.line, Column: at.col, Message: "invalid YAML: " + ye.GetMessage()}
}

func emptyBody(n ast.Node) bool {
	switch n.(type) {
	case *ast.CommentGroupNode, *ast.DirectiveNode:
		return true
	}
	return isNil(n)
}

// checkTokens rejects what would make the parser slow before it runs:
// nesting deeper than maxDepth (flow brackets plus block indentation
// levels) and chains of anchors and tags on one value.
func checkTokens(tokens token.Tokens) (*token.Token, string) {
	var (
		flow  int   // open [ and {
		cols  []int // columns of the open block collections
		props int   // anchors and tags in a row
	)
	indent := func(col int) {
		for len(cols) > 0 && cols[len(cols)-1] >= col {
			cols = cols[:len(cols)-1]
		}
		cols = append(cols, col)
	}
	for i, tk := range tokens {
		if tk == nil {
			continue
		}
		switch tk.Type {
		case token.DocumentHeaderType, token.DocumentEndType:
			flow, cols = 0, cols[:0]
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			if flow > 0 {
				flow--
			}
		case token.SequenceEntryType, token.MappingKeyType:
			if flow == 0 {
				indent(posOf(tk).col)
			}
		case token.MappingValueType:
			if flow == 0 && i > 0 && tokens[i-1] != nil {
				indent(posOf(tokens[i-1]).col) // the key's column
			}
		}
		if flow+len(cols) > maxDepth {
			return tk, fmt.Sprintf("nested more than %d levels deep", maxDepth)
		}
		switch {
		case tk.Type == token.AnchorType || tk.Type == token.TagType:
			props++
			if props > 2 {
				return tk, "a value may carry at most one anchor and one tag"
			}
		case i > 0 && tokens[i-1] != nil && tokens[i-1].Type == token.AnchorType:
			// the anchor's name
		default:
			props = 0
		}
	}
	return nil, ""
}

// decoder fills Go values from the AST. It is written against the AST
// rather than goccy's own decoder so that every error carries the full
// field path and the position of its key, unknown fields are reported in
// file order, and numbers are never silently turned into strings (a secret
// written as 0123 would otherwise become "123").
type decoder struct {
	errs    errorList
	pos     map[string]position    // field path -> position of its key or list item
	anchors map[string][]anchorDef // name -> definitions in file order
	merging map[*ast.MappingNode]bool
	merges  int // << being expanded, nested
	budget  int
	stopped bool
}

type anchorDef struct {
	at    position
	value ast.Node
}

func newDecoder(name string, body ast.Node, size int) *decoder {
	d := &decoder{
		errs:    errorList{file: name},
		pos:     map[string]position{},
		anchors: map[string][]anchorDef{},
		merging: map[*ast.MappingNode]bool{},
		budget:  max(minValues, size/2),
	}
	d.collectAnchors(body)
	return d
}

// collectAnchors records every anchor so an alias can find the latest one
// of its name defined before it, as YAML requires.
func (d *decoder) collectAnchors(root ast.Node) {
	stack := []ast.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if isNil(n) {
			continue
		}
		switch n := n.(type) {
		case *ast.MappingNode:
			for _, v := range n.Values {
				if v != nil {
					stack = append(stack, v)
				}
			}
		case *ast.MappingValueNode:
			stack = append(stack, n.Key, n.Value)
		case *ast.MappingKeyNode:
			stack = append(stack, n.Value)
		case *ast.SequenceNode:
			stack = append(stack, n.Values...)
		case *ast.TagNode:
			stack = append(stack, n.Value)
		case *ast.AnchorNode:
			if name := tokenValue(n.Name); name != "" {
				d.anchors[name] = append(d.anchors[name], anchorDef{at: posOf(n.Start), value: n.Value})
			}
			stack = append(stack, n.Value)
		}
	}
	for _, defs := range d.anchors {
		slices.SortFunc(defs, func(a, b anchorDef) int { return comparePos(a.at, b.at) })
	}
}

func (d *decoder) fail(field string, at position, format string, args ...any) {
	d.errs.add(field, at, format, args...)
}

// spend counts one produced value against the budget.
func (d *decoder) spend(field string, at position) bool {
	if d.stopped {
		return false
	}
	d.budget--
	if d.budget < 0 {
		d.stopped = true
		d.fail(field, at, "the file expands to more values than its size allows (aliases referring to aliases?)")
		return false
	}
	return true
}

// resolve strips anchors and tags and follows aliases, returning the value
// node and its tag ("" if none). A nil node is YAML null.
func (d *decoder) resolve(n ast.Node, field string, at position) (ast.Node, string, bool) {
	tag := ""
	for range maxHops {
		if isNil(n) {
			return nil, tag, true
		}
		switch x := n.(type) {
		case *ast.AnchorNode:
			n = x.Value
		case *ast.TagNode:
			if tag != "" {
				d.fail(field, at, "a value may carry only one tag")
				return nil, "", false
			}
			tag = tokenValue(x)
			n = x.Value
		case *ast.AliasNode:
			name := tokenValue(x.Value)
			defs := d.anchors[name]
			aliasAt := posOf(x.Start)
			i := len(defs) - 1
			for i >= 0 && comparePos(defs[i].at, aliasAt) >= 0 {
				i--
			}
			if i < 0 {
				d.fail(field, at, "alias *%s has no anchor &%s before it", name, name)
				return nil, "", false
			}
			n = defs[i].value
		default:
			return n, tag, true
		}
	}
	d.fail(field, at, "too many anchors, aliases and tags wrapped around one value")
	return nil, "", false
}

// decode stores node n into v, which must be addressable. field names the
// value in errors and at is where they point: the key of a mapping entry or
// the start of a list item.
func (d *decoder) decode(n ast.Node, v reflect.Value, field string, at position) {
	if !d.spend(field, at) {
		return
	}
	n, tag, ok := d.resolve(n, field, at)
	if !ok || n == nil {
		return
	}
	if _, null := n.(*ast.NullNode); null {
		return // null leaves the zero value, which means "default"
	}
	d.value(n, tag, v, field, at)
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func (d *decoder) value(n ast.Node, tag string, v reflect.Value, field string, at position) {
	t := v.Type()
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if !tagAllowed(tag, "!!str") {
			d.fail(field, at, "tag %s is not allowed here", tag)
			return
		}
		text, ok := scalarText(n)
		if !ok {
			d.fail(field, at, "must be a single value, not %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(text)); err != nil {
			d.fail(field, at, "%s", err.Error())
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.value(n, tag, p.Elem(), field, at)
		v.Set(p)
	case reflect.Struct:
		if !tagAllowed(tag, "!!map") {
			d.fail(field, at, "tag %s is not allowed here", tag)
			return
		}
		d.structValue(n, v, field, at)
	case reflect.Map:
		if !tagAllowed(tag, "!!map") {
			d.fail(field, at, "tag %s is not allowed here", tag)
			return
		}
		d.mapValue(n, v, field, at)
	case reflect.Slice:
		if !tagAllowed(tag, "!!seq") {
			d.fail(field, at, "tag %s is not allowed here", tag)
			return
		}
		d.sliceValue(n, v, field, at)
	case reflect.String:
		d.stringValue(n, tag, v, field, at)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok || !tagAllowed(tag, "!!bool") {
			d.fail(field, at, "must be true or false, not %s", describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		d.intValue(n, tag, v, field, at)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		d.uintValue(n, tag, v, field, at)
	case reflect.Float32, reflect.Float64:
		d.floatValue(n, tag, v, field, at)
	default:
		// A field type this loader does not know: a programming error in
		// the model, reported rather than guessed at.
		d.fail(field, at, "internal error: cannot decode into %s", t)
	}
}

func tagAllowed(tag, want string) bool { return tag == "" || tag == want }

func (d *decoder) stringValue(n ast.Node, tag string, v reflect.Value, field string, at position) {
	switch {
	case tag == "!!str":
		if s, ok := scalarText(n); ok {
			v.SetString(s)
			return
		}
	case tag != "":
		d.fail(field, at, "tag %s is not allowed here", tag)
		return
	}
	switch x := n.(type) {
	case *ast.StringNode:
		v.SetString(x.Value)
	case *ast.LiteralNode:
		if x.Value != nil {
			v.SetString(x.Value.Value)
		}
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		text := tokenValue(n)
		d.fail(field, at, "must be a string, not %s (write %s to keep it as text)", describe(n), strconv.Quote(text))
	default:
		d.fail(field, at, "must be a string, not %s", describe(n))
	}
}

func (d *decoder) intValue(n ast.Node, tag string, v reflect.Value, field string, at position) {
	x, ok := n.(*ast.IntegerNode)
	if !ok || !tagAllowed(tag, "!!int") {
		d.fail(field, at, "must be an integer, not %s", describe(n))
		return
	}
	var i int64
	switch val := x.Value.(type) {
	case int64:
		i = val
	case uint64:
		if val > math.MaxInt64 {
			d.fail(field, at, "%s is out of range", tokenValue(n))
			return
		}
		i = int64(val)
	default:
		d.fail(field, at, "must be an integer, not %s", describe(n))
		return
	}
	if v.OverflowInt(i) {
		d.fail(field, at, "%s is out of range", tokenValue(n))
		return
	}
	v.SetInt(i)
}

func (d *decoder) uintValue(n ast.Node, tag string, v reflect.Value, field string, at position) {
	x, ok := n.(*ast.IntegerNode)
	if !ok || !tagAllowed(tag, "!!int") {
		d.fail(field, at, "must be a non-negative integer, not %s", describe(n))
		return
	}
	var u uint64
	switch val := x.Value.(type) {
	case int64:
		if val < 0 {
			d.fail(field, at, "must not be negative")
			return
		}
		u = uint64(val)
	case uint64:
		u = val
	default:
		d.fail(field, at, "must be a non-negative integer, not %s", describe(n))
		return
	}
	if v.OverflowUint(u) {
		d.fail(field, at, "%s is out of range", tokenValue(n))
		return
	}
	v.SetUint(u)
}

func (d *decoder) floatValue(n ast.Node, tag string, v reflect.Value, field string, at position) {
	if !tagAllowed(tag, "!!float") && !tagAllowed(tag, "!!int") {
		d.fail(field, at, "tag %s is not allowed here", tag)
		return
	}
	var f float64
	switch x := n.(type) {
	case *ast.FloatNode:
		f = x.Value
	case *ast.IntegerNode:
		switch val := x.Value.(type) {
		case int64:
			f = float64(val)
		case uint64:
			f = float64(val)
		}
	case *ast.StringNode:
		// goccy reads plain 1e3 as a string; YAML 1.2 calls it a number.
		tk := x.Token
		parsed, err := strconv.ParseFloat(x.Value, 64)
		if tk == nil || tk.Type != token.StringType || err != nil {
			d.fail(field, at, "must be a number, not %s", describe(n))
			return
		}
		f = parsed
	default:
		d.fail(field, at, "must be a number, not %s", describe(n))
		return
	}
	if math.IsInf(f, 0) || math.IsNaN(f) || v.OverflowFloat(f) {
		d.fail(field, at, "must be a finite number")
		return
	}
	v.SetFloat(f)
}

func (d *decoder) sliceValue(n ast.Node, v reflect.Value, field string, at position) {
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.fail(field, at, "must be a list, not %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
	for i, item := range seq.Values {
		child := fmt.Sprintf("%s[%d]", field, i)
		itemAt := nodePos(item)
		if itemAt.line == 0 {
			itemAt = at
		}
		d.pos[child] = itemAt
		d.decode(item, s.Index(i), child, itemAt)
	}
	v.Set(s)
}

func (d *decoder) mapValue(n ast.Node, v reflect.Value, field string, at position) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(field, at, "internal error: cannot decode into %s", t)
		return
	}
	entries, ok := d.entries(n, field, at)
	if !ok {
		return
	}
	m := reflect.MakeMapWithSize(t, len(entries))
	for _, e := range entries {
		child := joinField(field, e.key)
		d.pos[child] = e.at
		elem := reflect.New(t.Elem()).Elem()
		d.decode(e.value, elem, child, e.at)
		m.SetMapIndex(reflect.ValueOf(e.key).Convert(t.Key()), elem)
	}
	v.Set(m)
}

func (d *decoder) structValue(n ast.Node, v reflect.Value, field string, at position) {
	entries, ok := d.entries(n, field, at)
	if !ok {
		return
	}
	fields := fieldsOf(v.Type())
	for _, e := range entries {
		if field == "" && strings.HasPrefix(e.key, extensionPrefix) {
			continue // a place for anchors, as in Compose files
		}
		child := joinField(field, e.key)
		i, known := fields.index[e.key]
		if !known {
			d.fail(child, e.at, "%s", unknownField(e.key, fields.names))
			continue
		}
		d.pos[child] = e.at
		d.decode(e.value, v.Field(i), child, e.at)
	}
}

// extensionPrefix marks top-level keys that are ignored, so shared
// settings can be anchored outside any item: x-defaults: &defaults {...}.
const extensionPrefix = "x-"

// entry is one key of a mapping after merge keys are applied.
type entry struct {
	key   string
	at    position
	value ast.Node
}

// entries lists a mapping's keys in file order, followed by keys it
// merges with <<: that it does not set itself (earlier merges win, as in
// YAML 1.1, which is what every YAML user expects of <<).
func (d *decoder) entries(n ast.Node, field string, at position) ([]entry, bool) {
	var values []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		if d.merging[m] {
			d.fail(field, at, "<< merges a mapping into itself")
			return nil, false
		}
		d.merging[m] = true
		defer delete(d.merging, m)
		values = m.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{m}
	default:
		if field == "" {
			d.fail(field, at, "the file must be a mapping of sources, destinations, agents and forwards, not %s", describe(n))
		} else {
			d.fail(field, at, "must be a mapping, not %s", describe(n))
		}
		return nil, false
	}
	seen := map[string]bool{}
	var out, merged []entry
	for _, mv := range values {
		if mv == nil {
			continue
		}
		keyAt := nodePos(mv.Key)
		if keyAt.line == 0 {
			keyAt = at
		}
		if !d.spend(field, keyAt) {
			return nil, false
		}
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			more, ok := d.merge(mv.Value, field, keyAt)
			if !ok {
				return nil, false
			}
			merged = append(merged, more...)
			continue
		}
		key, ok := d.key(mv.Key, field, keyAt)
		if !ok {
			return nil, false
		}
		if seen[key] {
			d.fail(joinField(field, key), keyAt, "duplicate key %q", key)
			return nil, false
		}
		seen[key] = true
		out = append(out, entry{key: key, at: keyAt, value: mv.Value})
	}
	for _, e := range merged {
		if !seen[e.key] {
			seen[e.key] = true
			out = append(out, e)
		}
	}
	return out, true
}

// merge returns the entries that "<<: value" brings in.
func (d *decoder) merge(value ast.Node, field string, at position) ([]entry, bool) {
	if d.merges >= maxDepth {
		d.fail(field, at, "<< merges nested more than %d deep", maxDepth)
		return nil, false
	}
	d.merges++
	defer func() { d.merges-- }()
	n, _, ok := d.resolve(value, field, at)
	if !ok {
		return nil, false
	}
	switch x := n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return d.entries(x, field, at)
	case *ast.SequenceNode:
		seen := map[string]bool{}
		var out []entry
		for _, item := range x.Values {
			itemAt := nodePos(item)
			if itemAt.line == 0 {
				itemAt = at
			}
			m, _, ok := d.resolve(item, field, itemAt)
			if !ok {
				return nil, false
			}
			switch m.(type) {
			case *ast.MappingNode, *ast.MappingValueNode:
			default:
				d.fail(field, itemAt, "<< takes a mapping or a list of mappings, not a list holding %s", describe(m))
				return nil, false
			}
			es, ok := d.entries(m, field, itemAt)
			if !ok {
				return nil, false
			}
			for _, e := range es {
				if !seen[e.key] {
					seen[e.key] = true
					out = append(out, e)
				}
			}
		}
		return out, true
	}
	d.fail(field, at, "<< takes a mapping or a list of mappings, not %s", describe(n))
	return nil, false
}

// key returns a mapping key as text; keys are scalars.
func (d *decoder) key(k ast.MapKeyNode, field string, at position) (string, bool) {
	var n ast.Node = k
	if mk, ok := k.(*ast.MappingKeyNode); ok && mk != nil {
		n = mk.Value
	}
	n, _, ok := d.resolve(n, field, at)
	if !ok {
		return "", false
	}
	if s, ok := scalarText(n); ok {
		return s, true
	}
	d.fail(field, at, "a key must be a string, not %s", describe(n))
	return "", false
}

// scalarText is the text of a scalar as written (for a number, its digits
// as in the file, so "15" stays "15").
func scalarText(n ast.Node) (string, bool) {
	switch x := n.(type) {
	case nil:
		return "", true
	case *ast.StringNode:
		return x.Value, true
	case *ast.LiteralNode:
		if x.Value == nil {
			return "", true
		}
		return x.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode, *ast.NullNode:
		return tokenValue(n), true
	}
	return "", false
}

// describe names the kind of a node for error messages.
func describe(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "the number " + tokenValue(n)
	case *ast.BoolNode:
		return "the boolean " + tokenValue(n)
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	}
	return "a " + strings.ToLower(n.Type().String()) + " node"
}

// structFields maps the yaml names of a struct's fields to their index.
type structFields struct {
	index map[string]int
	names []string
}

var fieldCache sync.Map // reflect.Type -> *structFields

func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{index: map[string]int{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		switch name {
		case "-":
			continue
		case "":
			name = strings.ToLower(sf.Name)
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	fieldCache.Store(t, f)
	return f
}

// unknownField explains an unknown key, suggesting the field it was most
// likely meant to be.
func unknownField(key string, names []string) string {
	msg := fmt.Sprintf("unknown field %q", key)
	norm := func(s string) string { return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s)) }
	best, bestDist := "", 3
	for _, name := range names {
		if norm(name) == norm(key) {
			best, bestDist = name, 0
			break
		}
		if dist := editDistance(key, name); dist < bestDist && dist < len(name)/2 {
			best, bestDist = name, dist
		}
	}
	switch {
	case best != "":
		return msg + fmt.Sprintf("; did you mean %q?", best)
	case len(names) <= 6:
		return msg + " (expected " + strings.Join(names, ", ") + ")"
	}
	return msg
}

// editDistance is the Levenshtein distance, bounded to short keys so a long
// unknown key costs nothing.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// joinField appends a key to a field path: "destinations[0]" + "timeout"
// is "destinations[0].timeout"; a key that is not a plain word is quoted,
// as in headers["X.Odd"].
func joinField(field, key string) string {
	if !plainKey.MatchString(key) {
		return field + "[" + strconv.Quote(key) + "]"
	}
	if field == "" {
		return key
	}
	return field + "." + key
}

// nodePos is where a node starts as a reader sees it: a block mapping at
// its first key, a list item at its value, a key at its first character.
func nodePos(n ast.Node) position {
	for range maxHops {
		if isNil(n) {
			return position{}
		}
		switch x := n.(type) {
		case *ast.MappingNode:
			if !x.IsFlowStyle && len(x.Values) > 0 && x.Values[0] != nil {
				n = x.Values[0].Key
				continue
			}
			return posOf(x.Start)
		case *ast.MappingValueNode:
			n = x.Key
			continue
		case *ast.DocumentNode:
			return posOf(x.Start)
		}
		return posOf(n.GetToken())
	}
	return position{}
}

func posOf(tk *token.Token) position {
	if tk == nil || tk.Position == nil {
		return position{}
	}
	return position{line: tk.Position.Line, col: tk.Position.Column}
}

func comparePos(a, b position) int {
	if a.line != b.line {
		return a.line - b.line
	}
	return a.col - b.col
}

// tokenValue is the text of a node's token, "" if it has none.
func tokenValue(n ast.Node) string {
	if isNil(n) {
		return ""
	}
	if _, ok := n.(*ast.DocumentNode); ok {
		return ""
	}
	if tk := n.GetToken(); tk != nil {
		return tk.Value
	}
	return ""
}

// isNil reports a nil interface or a nil pointer inside one: goccy builds
// nodes with nil children in places, and calling a method on one panics.
func isNil(n ast.Node) bool {
	if n == nil {
		return true
	}
	v := reflect.ValueOf(n)
	return v.Kind() == reflect.Pointer && v.IsNil()
}
