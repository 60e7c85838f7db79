package store

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
)

// ErrReadOnlyVolume: the data volume cannot be written.
var ErrReadOnlyVolume = errors.New("data volume is read-only")

// Space is the data volume's state as the upload path needs it.
type Space struct {
	Free     uint64 // bytes available to this process
	Total    uint64
	ReadOnly bool // mounted read-only, or the store cannot create files under it
}

// Space reports the data volume's free space (statfs) and whether files can be created in
// it: a file is created and removed in tmp/, which catches a read-only mount and permissions
// alike.
func (s *SQLite) Space() (Space, error) { return VolumeSpace(s.dir, s.tmp()) }

// VolumeSpace reports the free space of the volume holding root and whether files can be
// created in probeDir (a store's spool directory, under root).
func VolumeSpace(root, probeDir string) (Space, error) {
	sp, err := statfs(root)
	if err != nil {
		return Space{}, err
	}
	f, err := os.CreateTemp(probeDir, "probe-*")
	if err != nil {
		if IsReadOnly(err) {
			sp.ReadOnly = true
			return sp, nil
		}
		if IsNoSpace(err) {
			sp.Free = 0
			return sp, nil
		}
		return sp, err
	}
	f.Close()
	os.Remove(f.Name())
	return sp, nil
}

// IsNoSpace reports an error from a full volume (ENOSPC, EDQUOT) or a full database.
func IsNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	// SQLITE_FULL; PostgreSQL's disk_full
	return sqliteCode(err) == 13 || sqlState(err) == "53100"
}

// IsReadOnly reports an error from a read-only volume or directory (EROFS, EACCES, EPERM) or a
// read-only database.
func IsReadOnly(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission) || errors.Is(err, ErrReadOnlyVolume) {
		return true
	}
	// SQLITE_READONLY; PostgreSQL's read_only_sql_transaction (a standby, or
	// default_transaction_read_only)
	return sqliteCode(err) == 8 || sqlState(err) == "25006"
}

// sqlState is a PostgreSQL error's SQLSTATE (pgconn.PgError has SQLState), "" for others.
func sqlState(err error) string {
	var e interface{ SQLState() string }
	if errors.As(err, &e) {
		return e.SQLState()
	}
	return ""
}

// IsIOError reports an I/O error of the data volume: EIO, or SQLite's SQLITE_IOERR, which is
// what SQLite answers for a write to a volume remounted read-only (EROFS) or over quota (its
// own SQLITE_FULL is for ENOSPC alone).
func IsIOError(err error) bool {
	if err == nil {
		return false
	}
	return errors.Is(err, syscall.EIO) || sqliteCode(err) == 10 // SQLITE_IOERR
}

// sqliteCode is the primary result code of a modernc.org/sqlite error, 0 for others.
func sqliteCode(err error) int {
	var c interface{ Code() int }
	if errors.As(err, &c) {
		return c.Code() & 0xff
	}
	return 0
}

// IsUnavailable reports an error that means the store's database could not be reached (a
// PostgreSQL server down, refused, or a connection cut): an outage to wait out, answered 503
// with Retry-After, never the caller's fault and never "internal error".
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	// SQLSTATE class 08 (connection exception) and 57P (the server shutting down, crashed,
	// or not yet accepting connections).
	state := sqlState(err)
	return strings.HasPrefix(state, "08") || strings.HasPrefix(state, "57P")
}
