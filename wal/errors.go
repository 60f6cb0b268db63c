package wal

import "errors"

var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("wal: not found")
	// ErrCorrupt marks stored bytes that do not decode: storage corruption,
	// never bad user input.
	ErrCorrupt = errors.New("wal: corrupt record")
	// ErrClosed: the store is closed.
	ErrClosed = errors.New("wal: closed")
)
