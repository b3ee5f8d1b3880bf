package geokv

/*
#include "geokv/geokv.h"
*/
import "C"

import "fmt"

// Error is an error reported by libgeokv: its fixed code (GEOKV_E*), the operation, and the
// library's message. Compare it with errors.Is against the sentinels below.
type Error struct {
	Code int    // a negative GEOKV_E* code; never renumbered
	Op   string // the operation ("put", "connect", ...); empty in a sentinel
	Msg  string // the library's message (geokv_errmsg); empty in a sentinel

	sentinel bool
}

// Error reads "geokv: <op>: <message> (GEOKV_E...)".
func (e *Error) Error() string {
	name := C.GoString(C.geokv_strerror(C.int(e.Code)))
	switch {
	case e.Op == "" && e.Msg == "":
		return "geokv: " + name
	case e.Msg == "":
		return fmt.Sprintf("geokv: %s: %s", e.Op, name)
	default:
		return fmt.Sprintf("geokv: %s: %s (%s)", e.Op, e.Msg, name)
	}
}

// Is makes errors.Is(err, ErrX) true when err carries ErrX's code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.sentinel && t.Code == e.Code
}

func sentinel(code C.int) *Error { return &Error{Code: int(code), sentinel: true} }

// One sentinel per code of geokv.h.
var (
	ErrNotFound    = sentinel(C.GEOKV_ENOTFOUND)    // the key does not exist
	ErrInvalid     = sentinel(C.GEOKV_EINVAL)       // invalid argument (empty key, bad mode, ...)
	ErrKeySize     = sentinel(C.GEOKV_EKEYSIZE)     // key longer than key_bytes_max
	ErrValueSize   = sentinel(C.GEOKV_EVALSIZE)     // value longer than value_bytes_max
	ErrWrongMode   = sentinel(C.GEOKV_EWRONGMODE)   // operation does not fit the handle or the key's mode
	ErrIO          = sentinel(C.GEOKV_EIO)          // storage or filesystem failure
	ErrCorrupt     = sentinel(C.GEOKV_ECORRUPT)     // data or message failed verification
	ErrBusy        = sentinel(C.GEOKV_EBUSY)        // data directory already open
	ErrClosed      = sentinel(C.GEOKV_ECLOSED)      // the DB was closed
	ErrPanic       = sentinel(C.GEOKV_EPANIC)       // storage engine panicked; reopen to recover
	ErrUnavailable = sentinel(C.GEOKV_EUNAVAILABLE) // no quorum reachable
	ErrTimeout     = sentinel(C.GEOKV_ETIMEOUT)     // request timeout passed; a write may or may not have happened
	ErrConfig      = sentinel(C.GEOKV_ECONFIG)      // configuration file or value invalid
	ErrVersion     = sentinel(C.GEOKV_EVERSION)     // library and header versions differ
	ErrConflict    = sentinel(C.GEOKV_ECONFLICT)    // compare-and-set lost
	ErrNoMemory    = sentinel(C.GEOKV_ENOMEM)       // out of memory
	ErrInternal    = sentinel(C.GEOKV_EINTERNAL)    // a bug in geokv; the message says where
	ErrForked      = sentinel(C.GEOKV_EFORKED)      // handle inherited through fork(): open a new one
)

func newError(op string, rc C.int, msg string) error {
	return &Error{Code: int(rc), Op: op, Msg: msg}
}
