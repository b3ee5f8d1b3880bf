package geokv

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T, opts *Options) (*DB, string) {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, dir
}

func TestVersionMatchesHeader(t *testing.T) {
	if err := checkVersion(); err != nil {
		t.Fatal(err)
	}
	if v := Version(); !strings.HasPrefix(v, "0.") {
		t.Fatalf("Version() = %q", v)
	}
}

func TestEmbeddedPutGetDelete(t *testing.T) {
	noCLeaks(t)
	db, _ := openTemp(t, &Options{Durability: DurabilityWrite})
	ctx := context.Background()
	if err := db.Put(ctx, b("k"), b("v")); err != nil {
		t.Fatal(err)
	}
	v, err := db.Get(ctx, b("k"))
	if err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	// An empty value is a value, not an absence.
	if err := db.Put(ctx, b("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Get(ctx, b("empty")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("Get(empty) = %v, %v", v, err)
	}
	if err := db.Delete(ctx, b("k")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Get(ctx, b("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := db.Delete(ctx, b("k")); err != nil {
		t.Fatalf("Delete of an absent key: %v", err)
	}
}

func TestEmbeddedErrorsCarryCodeAndMessage(t *testing.T) {
	noCLeaks(t)
	db, _ := openTemp(t, &Options{KeyBytesMax: 8, ValueBytesMax: 16})
	ctx := context.Background()
	err := db.Put(ctx, nil, b("v"))
	if !errors.Is(err, ErrInvalid) || errors.Is(err, ErrNotFound) {
		t.Fatalf("empty key: %v, want ErrInvalid", err)
	}
	var gerr *Error
	if !errors.As(err, &gerr) || gerr.Code != -2 || gerr.Op != "put" || gerr.Msg == "" {
		t.Fatalf("errors.As: %#v", gerr)
	}
	if !strings.Contains(err.Error(), "GEOKV_EINVAL") {
		t.Fatalf("Error() = %q", err.Error())
	}
	// The limits at and one past their edge.
	if err := db.Put(ctx, b(strings.Repeat("k", 8)), b(strings.Repeat("v", 16))); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
	if err := db.Put(ctx, b(strings.Repeat("k", 9)), b("v")); !errors.Is(err, ErrKeySize) {
		t.Fatalf("key one past the limit: %v", err)
	}
	if err := db.Put(ctx, b("k"), b(strings.Repeat("v", 17))); !errors.Is(err, ErrValueSize) {
		t.Fatalf("value one past the limit: %v", err)
	}
	// Cluster operations on an embedded store.
	if _, err := db.Add(ctx, b("n"), 1); !errors.Is(err, ErrWrongMode) {
		t.Fatalf("Add on an embedded store: %v", err)
	}
	if _, err := db.SetMembers(ctx, b("s")); !errors.Is(err, ErrWrongMode) {
		t.Fatalf("SetMembers on an embedded store: %v", err)
	}
	if err := db.PolicySet(ctx, b("p/"), Counter); !errors.Is(err, ErrWrongMode) {
		t.Fatalf("PolicySet on an embedded store: %v", err)
	}
	if _, err := Open(t.TempDir(), &Options{CommitTimeout: -time.Second}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative CommitTimeout: %v", err)
	}
}

func TestEmbeddedScan(t *testing.T) {
	noCLeaks(t)
	db, _ := openTemp(t, nil)
	ctx := context.Background()
	for i := 9; i >= 0; i-- {
		if err := db.Put(ctx, b(fmt.Sprintf("user/%02d", i)), b(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	db.Put(ctx, b("other"), b("x"))
	var keys []string
	for e, err := range db.Scan(ctx, b("user/")) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, string(e.Key)+"="+string(e.Value))
	}
	mustEqual(t, "scan", strings.Join(keys, " "),
		"user/00=0 user/01=1 user/02=2 user/03=3 user/04=4 user/05=5 user/06=6 user/07=7 user/08=8 user/09=9")
	n := 0
	for range db.Scan(ctx, nil) {
		n++
	}
	mustEqual(t, "entries of a scan of every key", n, 11)
	// Breaking out of the loop closes the C iterator (noCLeaks checks it).
	for e, err := range db.Scan(ctx, b("user/")) {
		if err != nil || string(e.Key) != "user/00" {
			t.Fatalf("first entry: %q, %v", e.Key, err)
		}
		break
	}
	// A scan whose context ends stops with ctx.Err().
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var last error
	seen := 0
	for _, err := range db.Scan(cctx, b("user/")) {
		if err != nil {
			last = err
			break
		}
		seen++
		cancel()
	}
	if !errors.Is(last, context.Canceled) || seen != 1 {
		t.Fatalf("cancelled scan: %d entries, %v", seen, last)
	}
}

func TestEmbeddedCloseIsIdempotent(t *testing.T) {
	noCLeaks(t)
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db.Put(ctx, b("k"), b("v"))
	if _, err := Open(dir, nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Open of an open directory: %v, want ErrBusy", err)
	}
	// A scan paused in its loop body while the DB closes ends with ErrClosed.
	var scanErr error
	for _, err := range db.Scan(ctx, nil) {
		if err != nil {
			scanErr = err
			break
		}
		if err := db.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if !errors.Is(scanErr, ErrClosed) {
		t.Fatalf("scan across Close: %v", scanErr)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := db.Put(ctx, b("k"), b("v")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := db.Get(ctx, b("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	db2, err := Open(dir, nil)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db2.Close()
	if v, err := db2.Get(ctx, b("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}

func TestEmbeddedContextDone(t *testing.T) {
	noCLeaks(t)
	db, _ := openTemp(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.Put(ctx, b("k"), b("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context: %v", err)
	}
	if _, err := db.Get(ctx, b("k")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get with a cancelled context: %v", err)
	}
	if _, err := db.Get(context.Background(), b("k")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the cancelled Put wrote: %v", err)
	}
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	if err := db.Put(dctx, b("k"), b("v")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put past its deadline: %v", err)
	}
}

// Many goroutines on one embedded DB (one C handle), with contexts that end mid-call, and a
// Close that races with the stragglers. Run under -race; noCLeaks checks the C side.
func TestEmbeddedConcurrentUse(t *testing.T) {
	noCLeaks(t)
	db, err := Open(t.TempDir(), &Options{Durability: DurabilityNone})
	if err != nil {
		t.Fatal(err)
	}
	const workers, ops = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*time.Millisecond+50*time.Microsecond)
				key := b(fmt.Sprintf("w%02d/%03d", w, i%20))
				var err error
				switch i % 4 {
				case 0, 1:
					err = db.Put(ctx, key, b(fmt.Sprint(i)))
				case 2:
					_, err = db.Get(ctx, key)
				case 3:
					for _, e := range db.Scan(ctx, b(fmt.Sprintf("w%02d/", w))) {
						if e != nil {
							err = e
							break
						}
					}
				}
				cancel()
				if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrNotFound) {
					errs <- fmt.Errorf("worker %d op %d: %w", w, i, err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Close while other goroutines still call: they get ErrClosed or finish first.
	var late sync.WaitGroup
	for w := 0; w < 4; w++ {
		late.Add(1)
		go func() {
			defer late.Done()
			for i := 0; i < 50; i++ {
				if err := db.Put(context.Background(), b("late"), b("x")); err != nil && !errors.Is(err, ErrClosed) {
					t.Errorf("Put racing Close: %v", err)
					return
				}
			}
		}()
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	late.Wait()
}
