package geokv

/*
#cgo CFLAGS: -I${SRCDIR}/../../capi/include
#cgo LDFLAGS: -lgeokv
#include <stdlib.h>
#include "geokv/geokv.h"
*/
import "C"

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Durability of the writes of an embedded store (Options.Durability).
type Durability uint32

const (
	DurabilityDefault Durability = C.GEOKV_DURABILITY_DEFAULT // the config file's, else Sync
	DurabilitySync    Durability = C.GEOKV_DURABILITY_SYNC    // fsync before acknowledging
	DurabilityWrite   Durability = C.GEOKV_DURABILITY_WRITE   // survives a process crash
	DurabilityNone    Durability = C.GEOKV_DURABILITY_NONE    // a crash may lose the last writes
)

// Options of Open. The zero value means "the config file's value, else the default".
type Options struct {
	Durability    Durability
	KeyBytesMax   uint64        // default 4096
	ValueBytesMax uint64        // default 1 MiB
	CommitTimeout time.Duration // deadline of one write; default 30 s; rounded up to ms
	ConfigPath    string        // optional TOML config file (README.md, "Configuration")
}

// ConnectOptions of Connect. The zero value means the defaults.
type ConnectOptions struct {
	// Timeout of a request made with a context that has no deadline; default 5 s.
	Timeout time.Duration
	// Conns bounds the C handles (connections) per timeout step; default 4.
	Conns int
	// CURVE: all three or none. The nodes' public key in Z85 (one, or one per endpoint
	// joined by commas, in endpoint order) and this client's key pair (geokv-keygen).
	CurveServerKey, CurvePublicKey, CurveSecretKey string
}

const (
	defaultTimeout = 5 * time.Second
	defaultConns   = 4
	maxEndpoints   = 64
)

// timeoutSteps are the request timeouts of the connection pools of a connected DB; a
// context deadline is rounded up to the next one (the last one caps it).
var timeoutSteps = []time.Duration{
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second,
	30 * time.Second, 60 * time.Second, 120 * time.Second,
}

// liveC counts the C objects this package holds at any moment (handles, iterators, byte
// strings and lists returned by the library, C strings it made). Tests check that it
// comes back to zero: every allocation is paired with its free function.
var liveC atomic.Int64

// Version is the version of the libgeokv the program runs with ("major.minor.patch").
func Version() string { return C.GoString(C.geokv_version_string()) }

// checkVersion refuses a library whose major.minor differs from the header's.
func checkVersion() error {
	if lib := int(C.geokv_version()); lib/100 != int(C.GEOKV_VERSION_NUMBER)/100 {
		return &Error{Code: int(C.GEOKV_EVERSION), Op: "version",
			Msg: fmt.Sprintf("libgeokv %s does not match the geokv.h this package was built with (%d)",
				Version(), int(C.GEOKV_VERSION_NUMBER))}
	}
	return nil
}

// DB is an embedded store or a connection to a cluster. See the package documentation for
// how it maps onto C handles; it is safe for concurrent use.
type DB struct {
	// Constant after construction.
	connected bool
	endpoints string         // connected: the comma-separated endpoint list
	copts     ConnectOptions // connected: with defaults filled in
	embedded  *C.geokv_db_t  // Open: the one handle

	mu       sync.Mutex // protects what follows
	idle     *sync.Cond // signalled when inflight drops to 0 after Close began
	closed   bool
	inflight int                     // calls between begin and end
	pools    map[time.Duration]*pool // connected: by request timeout
}

// pool holds the connections of one request timeout. tokens bounds the handles in use or
// idle; a caller holds a token while it uses a handle.
type pool struct {
	timeout time.Duration
	tokens  chan struct{}
	mu      sync.Mutex
	free    []*C.geokv_db_t
	all     []*C.geokv_db_t
}

// Open opens (creating when missing) an embedded store whose data lives in directory dir.
// dir may be "" when opts.ConfigPath names a data_dir; opts may be nil. A config file with a
// [cluster] section makes this process a node of that cluster, and the DB a connection to
// it. Errors: ErrInvalid, ErrVersion, ErrConfig, ErrBusy (already open), ErrIO.
func Open(dir string, opts *Options) (*DB, error) {
	if err := checkVersion(); err != nil {
		return nil, err
	}
	if opts == nil {
		opts = &Options{}
	}
	if strings.ContainsRune(dir, 0) || strings.ContainsRune(opts.ConfigPath, 0) {
		return nil, &Error{Code: int(C.GEOKV_EINVAL), Op: "open", Msg: "a path holds a NUL byte"}
	}
	copts := C.geokv_options_t{version: C.GEOKV_OPTIONS_VERSION}
	copts.durability = C.uint32_t(opts.Durability)
	copts.key_bytes_max = C.uint64_t(opts.KeyBytesMax)
	copts.value_bytes_max = C.uint64_t(opts.ValueBytesMax)
	if opts.CommitTimeout < 0 || opts.CommitTimeout > time.Duration(^uint32(0))*time.Millisecond {
		return nil, &Error{Code: int(C.GEOKV_EINVAL), Op: "open", Msg: "CommitTimeout out of range"}
	}
	copts.commit_timeout_ms = C.uint32_t((opts.CommitTimeout + time.Millisecond - 1) / time.Millisecond)
	var cpath, cconfig *C.char
	if dir != "" {
		cpath = cString(dir)
		defer freeCString(cpath)
	}
	if opts.ConfigPath != "" {
		cconfig = cString(opts.ConfigPath)
		defer freeCString(cconfig)
		copts.config_path = cconfig
	}
	var h *C.geokv_db_t
	rc, msg := locked(func() C.int { return C.geokv_open(&h, cpath, &copts) })
	if rc != C.GEOKV_OK {
		return nil, newError("open", rc, msg)
	}
	liveC.Add(1)
	db := &DB{embedded: h}
	db.idle = sync.NewCond(&db.mu)
	return db, nil
}

// Connect connects to a cluster through the client endpoints of one or more of its nodes
// ("tcp://10.0.0.1:7200"; at most 64). Any node serves any key. Connect does not wait for
// a node: the first operation fails with ErrTimeout or ErrUnavailable when none answers in
// time. opts may be nil. Errors: ErrInvalid (no, empty or malformed endpoints, incomplete
// CURVE keys), ErrVersion.
func Connect(endpoints []string, opts *ConnectOptions) (*DB, error) {
	if err := checkVersion(); err != nil {
		return nil, err
	}
	if len(endpoints) == 0 || len(endpoints) > maxEndpoints {
		return nil, &Error{Code: int(C.GEOKV_EINVAL), Op: "connect",
			Msg: fmt.Sprintf("%d endpoints given; 1..%d are allowed", len(endpoints), maxEndpoints)}
	}
	for _, e := range endpoints {
		if e == "" || strings.ContainsAny(e, ",\x00") {
			return nil, &Error{Code: int(C.GEOKV_EINVAL), Op: "connect",
				Msg: fmt.Sprintf("endpoint %q is empty or holds a comma or NUL", e)}
		}
	}
	o := ConnectOptions{}
	if opts != nil {
		o = *opts
	}
	if o.Timeout == 0 {
		o.Timeout = defaultTimeout
	}
	if o.Timeout < 0 || o.Timeout > time.Duration(^uint32(0))*time.Millisecond {
		return nil, &Error{Code: int(C.GEOKV_EINVAL), Op: "connect", Msg: "Timeout out of range"}
	}
	if o.Conns == 0 {
		o.Conns = defaultConns
	}
	if strings.ContainsRune(o.CurveServerKey+o.CurvePublicKey+o.CurveSecretKey, 0) {
		return nil, &Error{Code: int(C.GEOKV_EINVAL), Op: "connect", Msg: "a CURVE key holds a NUL byte"}
	}
	if o.Conns < 0 {
		return nil, &Error{Code: int(C.GEOKV_EINVAL), Op: "connect", Msg: "Conns is negative"}
	}
	db := &DB{connected: true, endpoints: strings.Join(endpoints, ","), copts: o,
		pools: map[time.Duration]*pool{}}
	db.idle = sync.NewCond(&db.mu)
	// One connection now, so that bad endpoints and keys fail here rather than later.
	p := db.poolFor(o.Timeout)
	h, err := db.dial(o.Timeout)
	if err != nil {
		return nil, err
	}
	p.all = append(p.all, h)
	p.free = append(p.free, h)
	return db, nil
}

// dial opens one C connection whose requests time out after timeout.
func (db *DB) dial(timeout time.Duration) (*C.geokv_db_t, error) {
	cend := cString(db.endpoints)
	defer freeCString(cend)
	opts := C.geokv_connect_options_t{version: C.GEOKV_CONNECT_OPTIONS_VERSION}
	opts.timeout_ms = C.uint32_t((timeout + time.Millisecond - 1) / time.Millisecond)
	for _, k := range []struct {
		s   string
		dst **C.char
	}{{db.copts.CurveServerKey, &opts.curve_server_key}, {db.copts.CurvePublicKey, &opts.curve_public_key},
		{db.copts.CurveSecretKey, &opts.curve_secret_key}} {
		if k.s != "" {
			*k.dst = cString(k.s)
			defer freeCString(*k.dst)
		}
	}
	var h *C.geokv_db_t
	rc, msg := locked(func() C.int { return C.geokv_connect(&h, cend, &opts) })
	if rc != C.GEOKV_OK {
		return nil, newError("connect", rc, msg)
	}
	liveC.Add(1)
	return h, nil
}

// poolFor returns the pool of one request timeout, creating it; db.mu must not be held.
func (db *DB) poolFor(timeout time.Duration) *pool {
	db.mu.Lock()
	defer db.mu.Unlock()
	p := db.pools[timeout]
	if p == nil {
		p = &pool{timeout: timeout, tokens: make(chan struct{}, db.copts.Conns)}
		db.pools[timeout] = p
	}
	return p
}

// timeoutFor is the request timeout of a call made with ctx on a connected DB.
func (db *DB) timeoutFor(ctx context.Context) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return db.copts.Timeout
	}
	left := time.Until(deadline)
	for _, step := range timeoutSteps {
		if left <= step {
			return step
		}
	}
	return timeoutSteps[len(timeoutSteps)-1]
}

// begin registers a call in progress; ErrClosed after Close.
func (db *DB) begin(op string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return &Error{Code: int(C.GEOKV_ECLOSED), Op: op, Msg: "the DB was closed"}
	}
	db.inflight++
	return nil
}

func (db *DB) end() {
	db.mu.Lock()
	db.inflight--
	if db.inflight == 0 && db.closed {
		db.idle.Broadcast()
	}
	db.mu.Unlock()
}

// acquire registers a call and hands it a C handle, and the function that gives it back.
func (db *DB) acquire(ctx context.Context, op string) (*C.geokv_db_t, func(), error) {
	if err := db.begin(op); err != nil {
		return nil, nil, err
	}
	if !db.connected {
		return db.embedded, db.end, nil
	}
	p := db.poolFor(db.timeoutFor(ctx))
	select {
	case p.tokens <- struct{}{}:
	case <-ctx.Done():
		db.end()
		return nil, nil, ctx.Err()
	}
	p.mu.Lock()
	var h *C.geokv_db_t
	if n := len(p.free); n > 0 {
		h = p.free[n-1]
		p.free = p.free[:n-1]
	}
	p.mu.Unlock()
	if h == nil {
		var err error
		if h, err = db.dial(p.timeout); err != nil {
			<-p.tokens
			db.end()
			return nil, nil, err
		}
		p.mu.Lock()
		p.all = append(p.all, h)
		p.mu.Unlock()
	}
	release := func() {
		p.mu.Lock()
		p.free = append(p.free, h)
		p.mu.Unlock()
		<-p.tokens
		db.end()
	}
	return h, release, nil
}

// run makes one C call with a handle of db. call fills its own outputs; when the call is
// abandoned because ctx ended, discard (if any) frees what a successful call returned.
func (db *DB) run(ctx context.Context, op string, call func(h *C.geokv_db_t) C.int, discard func()) (C.int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	h, release, err := db.acquire(ctx, op)
	if err != nil {
		return 0, err
	}
	type result struct {
		rc  C.int
		msg string
	}
	finish := func(r result) (C.int, error) {
		if r.rc < 0 {
			return r.rc, newError(op, r.rc, r.msg)
		}
		return r.rc, nil
	}
	if ctx.Done() == nil {
		rc, msg := locked(func() C.int { return call(h) })
		release()
		return finish(result{rc, msg})
	}
	const running, finished, abandoned = 0, 1, 2
	var state atomic.Int32
	done := make(chan result, 1)
	go func() {
		rc, msg := locked(func() C.int { return call(h) })
		if !state.CompareAndSwap(running, finished) {
			// Freed before the handle goes back, so that Close returns with nothing held.
			if rc >= 0 && discard != nil {
				discard()
			}
			release()
			return
		}
		release()
		done <- result{rc, msg}
	}()
	select {
	case r := <-done:
		return finish(r)
	case <-ctx.Done():
		if state.CompareAndSwap(running, abandoned) {
			return 0, ctx.Err()
		}
		return finish(<-done) // it finished as the context ended: its outputs are ours
	}
}

// Close waits for the calls in progress, then closes every C handle of the DB. Calls made
// after Close return ErrClosed; a second Close returns nil. The error is the first one a
// handle reported while closing (an embedded store flushes its data).
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	db.closed = true
	for db.inflight > 0 {
		db.idle.Wait()
	}
	var handles []*C.geokv_db_t
	if db.embedded != nil {
		handles = append(handles, db.embedded)
	}
	for _, p := range db.pools {
		handles = append(handles, p.all...)
		p.all, p.free = nil, nil
	}
	db.mu.Unlock()
	var first error
	for _, h := range handles {
		rc, msg := locked(func() C.int { return C.geokv_close(h) })
		liveC.Add(-1)
		if rc != C.GEOKV_OK && first == nil {
			first = newError("close", rc, msg)
		}
	}
	return first
}

// locked runs a C call on a locked OS thread and reads the thread's error message (the C
// ABI keeps it per thread) when the call failed.
func locked(call func() C.int) (C.int, string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := call()
	if rc < 0 {
		return rc, C.GoString(C.geokv_errmsg())
	}
	return rc, ""
}

func cString(s string) *C.char {
	liveC.Add(1)
	return C.CString(s)
}

func freeCString(p *C.char) {
	C.free(unsafe.Pointer(p))
	liveC.Add(-1)
}

// cBytes points C at b without copying (cgo pins it for the call, and no geokv function
// keeps the pointer). A nil slice is NULL; an empty non-nil slice is a non-NULL pointer.
func cBytes(b []byte) (*C.uint8_t, C.size_t) {
	return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b))), C.size_t(len(b))
}

// takeBytes copies bytes returned by the library into Go memory and frees them.
func takeBytes(p *C.uint8_t, n C.size_t) []byte {
	b := C.GoBytes(unsafe.Pointer(p), C.int(n))
	freeBytes(p)
	return b
}

func freeBytes(p *C.uint8_t) {
	if p != nil {
		C.geokv_free(unsafe.Pointer(p))
		liveC.Add(-1)
	}
}

// takeList copies a list returned by the library into Go memory and frees it.
func takeList(l *C.geokv_list_t) [][]byte {
	if l == nil {
		return nil
	}
	n := int(l.count)
	out := make([][]byte, n)
	if n > 0 {
		items := unsafe.Slice(l.items, n)
		lengths := unsafe.Slice(l.lengths, n)
		for i := range out {
			out[i] = C.GoBytes(unsafe.Pointer(items[i]), C.int(lengths[i]))
		}
	}
	freeList(l)
	return out
}

func freeList(l *C.geokv_list_t) {
	if l != nil {
		C.geokv_list_free(l)
		liveC.Add(-1)
	}
}

func unsafePointer[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }
