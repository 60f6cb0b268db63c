package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a config file: where it is, which field, and what
// is wrong. Line and Column are 1-based; both are 0 when the problem has no
// place in the text (the file is too large, or the File was built in code).
type Error struct {
	File    string
	Line    int
	Column  int
	Field   string // e.g. "destinations[1].max_in_flight"; empty for the file as a whole
	Message string
}

// Error formats the error the way compilers do, so editors can jump to it:
//
//	config.yaml:14:5: destinations[0].timeout: invalid duration "15" (use a unit, e.g. 15s, 5m, 1h)
func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		if loc != "" {
			loc += ":"
		}
		loc += fmt.Sprintf("%d:%d", e.Line, e.Column)
	}
	parts := make([]string, 0, 3)
	for _, s := range []string{loc, e.Field, e.Message} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ": ")
}

// ErrorList is returned when a file has more than one problem, in the order
// they appear in the file. errors.As(err, new(*Error)) finds the first.
type ErrorList []*Error

// Error prints one problem per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As and errors.Is see every *Error in the list.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// maxErrors bounds how many problems one parse reports; past it the list
// ends with a note, since the rest are usually consequences of the first.
const maxErrors = 20

// position is a place in the file, 1-based; the zero value means unknown.
type position struct{ line, col int }

// errorList collects the problems of one parse or validation.
type errorList struct {
	file  string
	list  []*Error
	extra int // problems dropped past maxErrors
}

func (l *errorList) add(field string, at position, format string, args ...any) {
	if len(l.list) >= maxErrors {
		l.extra++
		return
	}
	l.list = append(l.list, &Error{
		File:    l.file,
		Line:    at.line,
		Column:  at.col,
		Field:   field,
		Message: fmt.Sprintf(format, args...),
	})
}

func (l *errorList) empty() bool { return len(l.list) == 0 }

// err returns nil, the single *Error, or an ErrorList sorted by position
// (problems without a position keep their order, last).
func (l *errorList) err() error {
	switch len(l.list) {
	case 0:
		return nil
	case 1:
		if l.extra == 0 {
			return l.list[0]
		}
	}
	list := slices.Clone(l.list)
	slices.SortStableFunc(list, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	if l.extra > 0 {
		list = append(list, &Error{File: l.file, Message: fmt.Sprintf("and %d more problems", l.extra)})
	}
	return ErrorList(list)
}
