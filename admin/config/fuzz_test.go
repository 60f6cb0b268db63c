package config

import (
	"errors"
	"testing"
)

// FuzzParse checks that no input panics, that every failure is an *Error
// with a position that makes sense, and that a file Parse accepts also
// passes Validate on its own.
func FuzzParse(f *testing.F) {
	f.Add(readExample(f))
	for _, tt := range errorCases {
		f.Add([]byte(tt.yaml))
	}
	f.Add([]byte("destinations:\n  - &d {slug: a, url: 'http://a'}\n  - {<<: *d, slug: b}\n"))
	f.Add([]byte("agents: [{id: a, allowed_targets: &t ['h:1']}, {id: b, allowed_targets: *t}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("fuzz.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatalf("Parse returned a File and an error: %v", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error: %v", err, err)
			}
			if e.Message == "" || e.File != "fuzz.yaml" || e.Line < 0 || e.Column < 0 || (e.Line > 0) != (e.Column > 0) {
				t.Fatalf("malformed error %#v", e)
			}
			return
		}
		if err := file.Validate(nil); err != nil {
			t.Fatalf("Parse accepted a file that Validate rejects: %v", err)
		}
		// Whatever the server knows, validation must not panic either.
		_ = file.Validate(func(string, string) bool { return true })
	})
}
