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
	// ErrLowSpace: free space is below the floor; new events are refused
	// until it returns.
	ErrLowSpace = errors.New("wal: free space below the floor")
	// ErrStopped: a write failed and the store takes no more writes; the
	// process must restart.
	ErrStopped = errors.New("wal: stopped after a write failure")
)
