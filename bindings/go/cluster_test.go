package geokv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var runs atomic.Int64

// keys makes the data keys of one test invocation (the mode prefix first): unique, so that
// tests can run again (go test -count=N) on the same cluster.
func keys() func(string) []byte {
	run := runs.Add(1)
	stamp := time.Now().UnixNano()
	return func(key string) []byte { return []byte(fmt.Sprintf("%s@%d.%d", key, stamp, run)) }
}

// regions connects once to each region's node of the shared cluster.
func regions(t *testing.T) []*DB {
	t.Helper()
	var dbs []*DB
	for _, e := range cluster(t) {
		db, err := Connect([]string{e}, &ConnectOptions{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs = append(dbs, db)
	}
	return dbs
}

func TestClusterStrongKeysAcrossRegions(t *testing.T) {
	k := keys()
	noCLeaks(t)
	rs := regions(t)
	a, bb, c := rs[0], rs[1], rs[2]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Put(ctx, k("strong/x"), b("one")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*DB{bb, c} { // linearizable: every region sees it at once
		if v, err := r.Get(ctx, k("strong/x")); err != nil || string(v) != "one" {
			t.Fatalf("Get from another region: %q, %v", v, err)
		}
	}
	ok, err := a.CompareAndSwap(ctx, k("strong/c"), nil, b("v1"))
	mustEqual(t, "cas on an absent key", ok && err == nil, true)
	ok, err = bb.CompareAndSwap(ctx, k("strong/c"), nil, b("other"))
	mustEqual(t, "cas expecting absence on a present key", !ok && err == nil, true)
	ok, err = bb.CompareAndSwap(ctx, k("strong/c"), b("wrong"), b("other"))
	mustEqual(t, "cas with a wrong expectation", !ok && err == nil, true)
	ok, err = c.CompareAndSwap(ctx, k("strong/c"), b("v1"), b("v2"))
	mustEqual(t, "cas with the right expectation", ok && err == nil, true)
	n, err := a.Add(ctx, k("strong/n"), 5)
	mustEqual(t, "add", fmt.Sprint(n, err), "5 <nil>")
	n, err = bb.Add(ctx, k("strong/n"), -7)
	mustEqual(t, "add from another region", fmt.Sprint(n, err), "-2 <nil>")
	if _, err := c.Add(ctx, k("strong/x"), 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Add on a non-integer: %v", err)
	}
	if err := c.Delete(ctx, k("strong/x")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, k("strong/x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	// Iteration is for embedded stores only.
	for _, err := range a.Scan(ctx, nil) {
		if !errors.Is(err, ErrWrongMode) {
			t.Fatalf("Scan on a connected DB: %v", err)
		}
	}
}

func TestClusterEventualModesConverge(t *testing.T) {
	k := keys()
	noCLeaks(t)
	rs := regions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// counter
	for i, r := range rs {
		if _, err := r.Add(ctx, k("cnt/hits"), int64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "counter converges to 6", func() bool {
		for _, r := range rs {
			if v, err := r.Get(ctx, k("cnt/hits")); err != nil || string(v) != "6" {
				return false
			}
		}
		return true
	})
	if err := rs[0].Put(ctx, k("cnt/hits"), b("1")); !errors.Is(err, ErrWrongMode) {
		t.Fatalf("Put on a counter: %v", err)
	}
	// set
	if err := rs[0].SetAdd(ctx, k("tags/t"), b("x")); err != nil {
		t.Fatal(err)
	}
	if err := rs[1].SetAdd(ctx, k("tags/t"), b("y")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "set converges to {x,y}", func() bool {
		for _, r := range rs {
			if m, err := r.SetMembers(ctx, k("tags/t")); err != nil || joined(m) != "x,y" {
				return false
			}
		}
		return true
	})
	if err := rs[2].SetRemove(ctx, k("tags/t"), b("x")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "set converges to {y}", func() bool {
		for _, r := range rs {
			in, err := r.SetContains(ctx, k("tags/t"), b("x"))
			if err != nil || in {
				return false
			}
		}
		return true
	})
	if m, err := rs[0].SetMembers(ctx, k("tags/absent")); err != nil || len(m) != 0 {
		t.Fatalf("members of an absent set: %q, %v", m, err)
	}
	// mvreg: concurrent writes stay siblings until a write with their context covers them.
	if err := rs[0].MVPut(ctx, k("mvr/k"), b("x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := rs[1].MVPut(ctx, k("mvr/k"), b("y"), nil); err != nil {
		t.Fatal(err)
	}
	var causal []byte
	eventually(t, "mvreg siblings x,y everywhere", func() bool {
		for _, r := range rs {
			vals, c, err := r.MVGet(ctx, k("mvr/k"))
			if err != nil || joined(vals) != "x,y" {
				return false
			}
			causal = c
		}
		return true
	})
	if err := rs[2].MVPut(ctx, k("mvr/k"), b("z"), causal); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mvreg resolved to z everywhere", func() bool {
		for _, r := range rs {
			if vals, _, err := r.MVGet(ctx, k("mvr/k")); err != nil || joined(vals) != "z" {
				return false
			}
		}
		return true
	})
	vals, causal, err := rs[0].MVGet(ctx, k("mvr/k"))
	if err != nil || len(vals) != 1 {
		t.Fatal(vals, err)
	}
	if err := rs[0].MVDelete(ctx, k("mvr/k"), causal); err != nil {
		t.Fatal(err)
	}
	if vals, _, err := rs[0].MVGet(ctx, k("mvr/k")); err != nil || len(vals) != 0 {
		t.Fatalf("after MVDelete: %q, %v", vals, err)
	}
	// lww
	if err := rs[0].Put(ctx, k("lww/k"), b("1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "lww value everywhere", func() bool {
		for _, r := range rs {
			if v, err := r.Get(ctx, k("lww/k")); err != nil || string(v) != "1" {
				return false
			}
		}
		return true
	})
}

func TestClusterNodeStates(t *testing.T) {
	noCLeaks(t)
	rs := regions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := rs[0].NodeSetState(ctx, 1, "suspect"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("suspect is the failure detector's: %v", err)
	}
	if err := retry(ctx, func() error { return rs[0].NodeSetState(ctx, 99, "draining") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown node: %v", err)
	}
	// Draining the metadata leader moves that leadership too: repeat while no leader answers.
	if err := retry(ctx, func() error { return rs[1].NodeSetState(ctx, 2, "draining") }); err != nil {
		t.Fatal(err)
	}
	if err := retry(ctx, func() error { return rs[0].NodeSetState(ctx, 2, "removed") }); !errors.Is(err, ErrConflict) {
		t.Fatalf("removing a node that holds replicas: %v", err)
	}
	if err := retry(ctx, func() error { return rs[0].NodeSetState(ctx, 2, "up") }); err != nil {
		t.Fatal(err)
	}
}

func TestClusterPolicyAndStatus(t *testing.T) {
	noCLeaks(t)
	rs := regions(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rs[0].PolicySet(ctx, b("tmp/"), Mode("nonsense")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown mode: %v", err)
	}
	if err := rs[0].PolicySet(ctx, b("tmp/"), Counter); err != nil {
		t.Fatal(err)
	}
	rules, err := rs[1].PolicyList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 || len(rules[0].Prefix) != 0 || rules[0].Mode != Strong {
		t.Fatalf("first rule is not the default: %+v", rules)
	}
	found := false
	for _, r := range rules {
		found = found || (string(r.Prefix) == "tmp/" && r.Mode == Counter)
	}
	if !found {
		t.Fatalf("tmp/ counter missing from %+v", rules)
	}
	if err := rs[2].PolicyRemove(ctx, b("tmp/")); err != nil {
		t.Fatal(err)
	}
	if err := rs[2].PolicyRemove(ctx, b("tmp/")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing a missing rule: %v", err)
	}
	lines, err := rs[0].Status(ctx)
	if err != nil || len(lines) == 0 {
		t.Fatalf("Status: %q, %v", lines, err)
	}
}

// A context that ends while a request crosses the (emulated) WAN returns ctx.Err() at once;
// the C call finishes in the background, frees what it returned and gives its handle back,
// so the DB keeps working and nothing stays allocated after Close.
func TestClusterContextEndsMidCall(t *testing.T) {
	k := keys()
	endpoints := cluster(t)
	noCLeaks(t)
	db, err := Connect(endpoints, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Strong writes need a WAN round trip (100 ms emulated between these regions).
	for i := 0; i < 5; i++ {
		// Returning ctx.Err() (rather than the write's own outcome, which takes a round trip)
		// shows the call did not wait for the C call.
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		err := db.Put(ctx, k(fmt.Sprintf("strong/deadline/%d", i)), b("v"))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Put with a 1 ms deadline: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(2 * time.Millisecond); cancel() }()
	// The abandoned writes above may or may not have happened: the key may be absent.
	if _, err := db.Get(ctx, k("strong/deadline/0")); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get cancelled mid-call: %v", err)
	}
	// The DB still serves, with and without deadlines.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := retry(ctx2, func() error { return db.Put(ctx2, k("strong/after"), b("ok")) }); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Get(context.Background(), k("strong/after")); err != nil || string(v) != "ok" {
		t.Fatalf("Get without a deadline: %q, %v", v, err)
	}
}

func TestClusterConnectErrors(t *testing.T) {
	noCLeaks(t)
	if _, err := Connect(nil, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no endpoints: %v", err)
	}
	if _, err := Connect([]string{"not-an-endpoint"}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("malformed endpoint: %v", err)
	}
	if _, err := Connect([]string{"tcp://a:1,tcp://b:2"}, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("comma inside one endpoint: %v", err)
	}
	if _, err := Connect([]string{"tcp://127.0.0.1:1"}, &ConnectOptions{CurveServerKey: "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("incomplete CURVE keys: %v", err)
	}
	// Nobody listens: the request ends with its timeout (a call without a deadline uses
	// ConnectOptions.Timeout), never hangs.
	db, err := Connect([]string{"tcp://127.0.0.1:1"}, &ConnectOptions{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Put(context.Background(), b("k"), b("v"))
	if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Put to nobody: %v", err)
	}
	db.Close()
	if err := db.Put(context.Background(), b("k"), b("v")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
}

// Many goroutines on one connected DB: requests spread over its pool of handles, with and
// without deadlines, while other goroutines read. Run under -race.
func TestClusterConcurrentUse(t *testing.T) {
	k := keys()
	endpoints := cluster(t)
	noCLeaks(t)
	db, err := Connect(endpoints, &ConnectOptions{Conns: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const workers, ops = 12, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < ops; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				key := k(fmt.Sprintf("lww/w%d/%d", w, i%3))
				if w%2 == 0 {
					key = k(fmt.Sprintf("strong/w%d/%d", w, i%3))
				}
				err := retry(ctx, func() error { return db.Put(ctx, key, b(fmt.Sprint(i))) })
				if err == nil {
					_, err = db.Get(ctx, key)
				}
				cancel()
				if err != nil {
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
	db.mu.Lock()
	for timeout, p := range db.pools {
		p.mu.Lock()
		if len(p.all) > db.copts.Conns {
			t.Errorf("pool %v opened %d handles, more than Conns=%d", timeout, len(p.all), db.copts.Conns)
		}
		p.mu.Unlock()
	}
	db.mu.Unlock()
}
