package geokv

/*
#include "geokv/geokv.h"
*/
import "C"

import (
	"context"
	"iter"
)

// Entry is one key and its value, in Go memory owned by the caller.
type Entry struct {
	Key, Value []byte
}

// Scan iterates, in key order, over the entries of an embedded store whose key begins with
// prefix (nil or empty: every key):
//
//	for e, err := range db.Scan(ctx, []byte("user/")) {
//		if err != nil {
//			return err
//		}
//		use(e.Key, e.Value)
//	}
//
// The scan reads in pages, so it sees writes made while it runs in later pages, and never
// blocks writers. After an error (ErrClosed when the DB was closed, ctx.Err() when the
// context ended, ErrWrongMode on a connected DB) it yields that error once and stops. The
// C iterator is closed when the loop ends, however it ends. One goroutine at a time may
// drive one scan; many scans may run at once.
func (db *DB) Scan(ctx context.Context, prefix []byte) iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		p, pn := cBytes(prefix)
		var it *C.geokv_iter_t
		_, err := db.run(ctx, "scan", func(h *C.geokv_db_t) C.int {
			rc := C.geokv_iter_open(&it, h, p, pn)
			if rc == C.GEOKV_OK {
				liveC.Add(1)
			}
			return rc
		}, func() { closeIter(it) })
		if err != nil {
			yield(Entry{}, err)
			return
		}
		defer closeIter(it)
		for {
			if err := ctx.Err(); err != nil {
				yield(Entry{}, err)
				return
			}
			if err := db.begin("scan"); err != nil {
				yield(Entry{}, err)
				return
			}
			var e Entry
			rc, msg := locked(func() C.int {
				var k, v *C.uint8_t
				var kn, vn C.size_t
				rc := C.geokv_iter_next(it, &k, &kn, &v, &vn)
				if rc == C.GEOKV_OK { // copied now: the C memory lives until the next call
					e = Entry{Key: C.GoBytes(unsafePointer(k), C.int(kn)), Value: C.GoBytes(unsafePointer(v), C.int(vn))}
				}
				return rc
			})
			db.end()
			switch {
			case rc == C.GEOKV_DONE:
				return
			case rc < 0:
				yield(Entry{}, newError("scan", rc, msg))
				return
			}
			if !yield(e, nil) {
				return
			}
		}
	}
}

func closeIter(it *C.geokv_iter_t) {
	if it != nil {
		C.geokv_iter_close(it)
		liveC.Add(-1)
	}
}
