// Package geokv is the Go client of geokv, a geo-replicated key-value store. It is a thin
// cgo layer over the stable C ABI (geokv/geokv.h, library libgeokv.so) and nothing else.
//
// A *DB is either an embedded store ([Open]: plain keys, Put/Get/Delete and ordered prefix
// scans) or a connection to a cluster ([Connect]: every key has the replication mode the
// cluster's policy gives it, with the operations of that mode). Operations that do not fit
// the handle or the key's mode fail with an error that matches [ErrWrongMode].
//
// # Errors
//
// Every error the library reports is an *[Error] carrying the C code and the library's
// message; compare it with errors.Is against the sentinels (ErrNotFound, ErrUnavailable,
// ...) or take it apart with errors.As. A key that does not exist is ErrNotFound.
//
// # Contexts
//
// Every call that can block takes a context.Context. A call whose context is already done
// returns ctx.Err() without starting. When the context ends while the call runs, the call
// returns ctx.Err() at once; the C call it started finishes in the background (it is
// bounded by its request timeout) and whatever it returns is freed. A write abandoned that
// way may or may not have happened, exactly as with ErrTimeout.
//
// On a connected DB the context's deadline becomes the request timeout: the time left is
// rounded up to one of a few steps (100 ms, 250 ms, 500 ms, 1 s, 2 s, 5 s, 10 s, 30 s,
// 60 s, 120 s; at most 120 s) and the call runs on a connection opened with that timeout.
// A call without a deadline uses ConnectOptions.Timeout. An embedded DB has no per-request
// timeout in the C ABI: its writes are bounded by Options.CommitTimeout.
//
// # Concurrency and handles
//
// A *DB is safe for concurrent use by any number of goroutines.
//   - Open: one C handle (geokv_db_t), shared by every goroutine; the C ABI allows many
//     threads on one handle.
//   - Connect: a C handle serializes its requests, so the DB keeps a small pool of C
//     handles (connections) per timeout step, opened on first use, at most
//     ConnectOptions.Conns of them per step (default 4). A call takes an idle handle,
//     opens one when all are busy and the step has room, or waits (bounded by its context)
//     for one to come back.
//
// Every C call runs on a locked OS thread so that geokv_errmsg (thread-local in C) is read
// on the thread that failed. Close waits for the calls in progress, then closes every
// handle; later calls return ErrClosed, and a second Close returns nil.
//
// # Memory
//
// Keys and values are passed to C without copying (the C call never keeps them). Every
// byte string, list, iterator and handle the library returns is copied into Go memory where
// needed and released with its geokv free function before the call returns, including when
// the call was abandoned by its context.
package geokv
