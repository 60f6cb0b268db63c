package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/webhookops/webhookops/wal/model"
)

// MaxFileSize is the largest config file accepted, in bytes.
const MaxFileSize = 32 << 20

// File is a parsed, validated config file. Its items are as written: zero
// fields mean "default" and the caller applies model.Destination.WithDefaults.
type File struct {
	Sources      []model.Source      `yaml:"sources"`
	Destinations []model.Destination `yaml:"destinations"`
	Agents       []model.Agent       `yaml:"agents"`
	Forwards     []model.Forward     `yaml:"forwards"`

	name string              // file name for errors
	pos  map[string]position // field path -> where it is written
}

// Known reports whether an object of kind (KindDestination or KindAgent)
// with that slug or id already exists outside the file, on the server. It
// lets a file refer to a destination or agent created through the API. It
// is called during validation only and must not block.
type Known func(kind, slug string) bool

// Kinds passed to Known.
const (
	KindDestination = "destination"
	KindAgent       = "agent"
)

// Load reads and parses the config file at path; references must resolve
// within the file. See Parse.
func Load(path string) (*File, error) { return LoadWith(path, nil) }

// LoadWith is Load with references also resolved through known.
func LoadWith(path string, known Known) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config.Load: %w", err)
	}
	defer fh.Close()
	// Read one byte past the limit so ParseWith can tell "exactly at the
	// limit" from "over it" without reading a huge file whole.
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config.Load: %w", err)
	}
	return ParseWith(path, data, known)
}

// Parse decodes and validates a config file; name is used in errors only.
// Every destination a route names and every agent a destination or forward
// names must be declared in the same file. An empty file, or one with only
// comments, is a valid empty config.
//
// The error is an *Error, or an ErrorList when there are several problems.
// Decoding problems (syntax, unknown fields, wrong types) are reported
// alone; validation runs only on a file that decoded cleanly, so its
// errors are never echoes of a decoding one.
func Parse(name string, data []byte) (*File, error) { return ParseWith(name, data, nil) }

// ParseWith is Parse with references also resolved through known, for a
// server that has destinations and agents created through its API.
func ParseWith(name string, data []byte, known Known) (*File, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{File: name, Message: fmt.Sprintf("file is larger than %d MiB", MaxFileSize>>20)}
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // editors on Windows add one
	if !utf8.Valid(data) {
		at := invalidUTF8At(data)
		return nil, &Error{File: name, Line: at.line, Column: at.col, Message: "file is not valid UTF-8"}
	}
	body, err := parseYAML(name, data)
	if err != nil {
		return nil, err
	}
	f := &File{name: name, pos: map[string]position{}}
	if body != nil {
		d := newDecoder(name, body, len(data))
		d.decode(body, reflect.ValueOf(f).Elem(), "", nodePos(body))
		if !d.errs.empty() {
			return nil, d.errs.err()
		}
		f.pos = d.pos
	}
	if err := f.Validate(known); err != nil {
		return nil, err
	}
	return f, nil
}

// invalidUTF8At finds the first byte that is not UTF-8.
func invalidUTF8At(data []byte) position {
	at := position{line: 1, col: 1}
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return at
		}
		if r == '\n' {
			at.line++
			at.col = 1
		} else {
			at.col++
		}
		data = data[size:]
	}
	return at
}

// Validate checks every item (wal's Validate on each, and on each
// destination again with defaults applied, so a file cannot set
// backoff_max below the default backoff_base) and the file as a whole:
// slugs, agent ids and forward listen addresses are unique, each route
// names a destination declared in the file or known, and each agent-mode
// destination and each forward names an agent declared in the file or
// known. known may be nil. Errors point at the line of the field when the
// File came from Parse.
func (f *File) Validate(known Known) error {
	if f == nil {
		return nil
	}
	v := &validator{f: f, known: known, errs: errorList{file: f.name}}
	v.items()
	v.references()
	return v.errs.err()
}

type validator struct {
	f     *File
	known Known
	errs  errorList

	dests  map[string]int // slug -> index in f.Destinations
	agents map[string]int // id -> index in f.Agents
}

// at is the position of a field path, or of the nearest enclosing item when
// the field is not written in the file (a missing required field).
func (v *validator) at(field string) position {
	for field != "" {
		if p, ok := v.f.pos[field]; ok {
			return p
		}
		i := strings.LastIndexAny(field, ".[")
		if i < 0 {
			break
		}
		field = field[:i]
	}
	return position{}
}

func (v *validator) add(field, format string, args ...any) {
	v.errs.add(field, v.at(field), format, args...)
}

// where describes an earlier item for "already used by" messages.
func (v *validator) where(field string) string {
	if p := v.at(field); p.line > 0 {
		return fmt.Sprintf("%s (line %d)", field, p.line)
	}
	return field
}

// item reports a wal validation error under the item's path.
func (v *validator) item(prefix string, err error, suffix string) {
	var fe *model.FieldError
	if errors.As(err, &fe) {
		v.add(prefix+"."+fe.Field, "%s%s", fe.Message, suffix)
		return
	}
	v.add(prefix, "%v%s", err, suffix)
}

func (v *validator) items() {
	f := v.f
	each(v, "sources", "slug", f.Sources, func(s model.Source) string { return s.Slug }, nil)
	v.dests = each(v, "destinations", "slug", f.Destinations, func(d model.Destination) string { return d.Slug },
		func(d model.Destination) (string, error) {
			return " (with defaults applied)", d.WithDefaults().Validate()
		})
	v.agents = each(v, "agents", "id", f.Agents, func(a model.Agent) string { return a.ID }, nil)
	each(v, "forwards", "listen", f.Forwards, func(fw model.Forward) string { return fw.Listen }, nil)
}

// each validates every item of one section and reports a key used twice;
// it returns each key's index. more, when set, is a check made once the
// item is valid on its own; its note is added to its message.
func each[T interface{ Validate() error }](v *validator, section, keyField string, items []T, key func(T) string, more func(T) (note string, err error)) map[string]int {
	seen := map[string]int{}
	label := keyField + " "
	if keyField == "listen" {
		label = "" // the address speaks for itself
	}
	for i, it := range items {
		p := fmt.Sprintf("%s[%d]", section, i)
		if err := it.Validate(); err != nil {
			v.item(p, err, "")
		} else if more != nil {
			if note, err := more(it); err != nil {
				v.item(p, err, note)
			}
		}
		k := key(it)
		if j, dup := seen[k]; dup && k != "" {
			v.add(p+"."+keyField, "%s%q is already used by %s", label, k, v.where(fmt.Sprintf("%s[%d]", section, j)))
		} else {
			seen[k] = i
		}
	}
	return seen
}

func (v *validator) references() {
	f := v.f
	for i, s := range f.Sources {
		routed := map[string]int{}
		for j, r := range s.Routes {
			p := fmt.Sprintf("sources[%d].routes[%d].destination", i, j)
			if !model.ValidSlug(r.Destination) {
				continue // the source's own Validate reported it
			}
			if k, dup := routed[r.Destination]; dup {
				v.add(p, "%q is already routed by routes[%d]; list all its event types in one route", r.Destination, k)
				continue
			}
			routed[r.Destination] = j
			if !v.has(KindDestination, r.Destination) {
				v.add(p, "%s", v.unknown(KindDestination, r.Destination))
			}
		}
	}
	for i, d := range f.Destinations {
		if d.Mode == model.ModeAgent && model.ValidSlug(d.Agent) && !v.has(KindAgent, d.Agent) {
			v.add(fmt.Sprintf("destinations[%d].agent", i), "%s", v.unknown(KindAgent, d.Agent))
		}
	}
	for i, fw := range f.Forwards {
		if model.ValidSlug(fw.Agent) && !v.has(KindAgent, fw.Agent) {
			v.add(fmt.Sprintf("forwards[%d].agent", i), "%s", v.unknown(KindAgent, fw.Agent))
		}
	}
}

func (v *validator) has(kind, slug string) bool {
	var ok bool
	switch kind {
	case KindDestination:
		_, ok = v.dests[slug]
	case KindAgent:
		_, ok = v.agents[slug]
	}
	return ok || (v.known != nil && v.known(kind, slug))
}

func (v *validator) unknown(kind, slug string) string {
	section := kind + "s"
	if v.known == nil {
		return fmt.Sprintf("unknown %s %q: it is not declared under %s in this file", kind, slug, section)
	}
	return fmt.Sprintf("unknown %s %q: it is neither declared under %s in this file nor on the server", kind, slug, section)
}
