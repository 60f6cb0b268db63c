package wal

import (
	"errors"
	"os"
	"syscall"
)

// freeBytes is the space an unprivileged writer may still use on dir's
// file system (root's reserve is not counted: Pebble should not eat it).
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// reserve allocates size bytes to f with fallocate (no bytes written),
// or writes zeros where the file system has no fallocate.
func reserve(f *os.File, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		return writeZeros(f, size)
	}
	return err
}
