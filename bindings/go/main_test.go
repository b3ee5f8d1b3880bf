package geokv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of every wait of the cluster fixture: a hung cluster fails the tests, never hangs them.
const (
	readyWait    = 60 * time.Second
	convergeWait = 20 * time.Second
	stopWait     = 20 * time.Second
)

// The cluster the cluster tests share: `geokv local` with three regions on loopback,
// started on first use from $GEOKV_BIN (default: the dev build's geokv next to this
// module), stopped by TestMain whatever happens.
var (
	clusterOnce      sync.Once
	clusterProc      *exec.Cmd
	clusterExited    chan struct{} // closed once clusterProc was reaped
	clusterEndpoints []string
	clusterErr       error
	clusterDir       string
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopCluster()
	if clusterDir != "" {
		os.RemoveAll(clusterDir)
	}
	os.Exit(code)
}

// geokvBin is the geokv CLI the cluster tests start, or "" to skip them.
func geokvBin(t *testing.T) string {
	if bin := os.Getenv("GEOKV_BIN"); bin != "" {
		return bin // set: it must work (CI sets it)
	}
	bin, _ := filepath.Abs("../../build/dev/bin/geokv")
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no geokv CLI: set GEOKV_BIN (e.g. build/dev/bin/geokv) to run the cluster tests")
	}
	return bin
}

func portsFree(base int) bool {
	for _, off := range []int{0, 100, 200} {
		for i := 0; i < 3; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+off+i))
			if err != nil {
				return false
			}
			l.Close()
		}
	}
	return true
}

// pickBasePort finds a base port in 20000..29699 whose peer (+i), client (+100+i) and
// metrics (+200+i) ports are free now (other tests and engineers use other ranges).
func pickBasePort() (int, error) {
	for attempt := 0; attempt < 200; attempt++ {
		base := 20000 + (os.Getpid()*17+attempt*131+2500)%9700
		if portsFree(base) {
			return base, nil
		}
	}
	return 0, errors.New("no free base port in 20000..29999")
}

// cluster returns the client endpoints of the shared cluster (one per region).
func cluster(t *testing.T) []string {
	t.Helper()
	bin := geokvBin(t)
	clusterOnce.Do(func() { clusterErr = startCluster(bin) })
	if clusterErr != nil {
		t.Fatalf("cluster: %v", clusterErr)
	}
	return clusterEndpoints
}

func startCluster(bin string) error {
	dir, err := os.MkdirTemp("", "geokv-go-cluster-")
	if err != nil {
		return err
	}
	clusterDir = dir
	base, err := pickBasePort()
	if err != nil {
		return err
	}
	ready := filepath.Join(dir, "ready")
	log, err := os.Create(filepath.Join(dir, "cluster.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "local", "--regions", "a,b,c", "--base-port", fmt.Sprint(base),
		"--dir", filepath.Join(dir, "data"), "--ready-file", ready)
	cmd.Stdout, cmd.Stderr = log, log
	// Its own process group (stopped as a whole), and SIGINT when this test process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	if err := cmd.Start(); err != nil {
		return err
	}
	clusterProc = cmd
	exited := make(chan struct{})
	clusterExited = exited
	go func() { cmd.Wait(); log.Close(); close(exited) }()
	deadline := time.Now().Add(readyWait)
	for {
		if st, err := os.Stat(ready); err == nil && st.Size() > 0 {
			break
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(filepath.Join(dir, "cluster.log"))
			return fmt.Errorf("geokv local exited before it was ready:\n%s", out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("geokv local was not ready within %v", readyWait)
		}
	}
	for i := 0; i < 3; i++ {
		clusterEndpoints = append(clusterEndpoints, fmt.Sprintf("tcp://127.0.0.1:%d", base+100+i))
	}
	return setUpCluster()
}

// setUpCluster waits for shard leaders (the first strong writes may be refused right after
// start) and installs the policy the tests use, until every region routes by it.
func setUpCluster() error {
	ctx, cancel := context.WithTimeout(context.Background(), convergeWait)
	defer cancel()
	db, err := Connect(clusterEndpoints, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	for i := 0; i < 8; i++ {
		if err := retry(ctx, func() error { return db.Put(ctx, []byte(fmt.Sprintf("warmup/%d", i)), []byte("1")) }); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	for prefix, mode := range map[string]Mode{"cnt/": Counter, "tags/": Set, "mvr/": MVReg, "lww/": LWW} {
		if err := retry(ctx, func() error { return db.PolicySet(ctx, []byte(prefix), mode) }); err != nil {
			return fmt.Errorf("policy %s: %w", prefix, err)
		}
	}
	for _, e := range clusterEndpoints {
		r, err := Connect([]string{e}, nil)
		if err != nil {
			return err
		}
		err = retry(ctx, func() error {
			if _, err := r.SetMembers(ctx, []byte("tags/probe")); err != nil {
				return err
			}
			_, _, err := r.MVGet(ctx, []byte("mvr/probe"))
			return err
		})
		r.Close()
		if err != nil {
			return fmt.Errorf("policy did not reach %s: %w", e, err)
		}
	}
	return nil
}

// retry runs fn until it succeeds, or fails with an error other than a transient one.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil || !(errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrWrongMode)) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func stopCluster() {
	if clusterProc == nil || clusterProc.Process == nil {
		return
	}
	pid := clusterProc.Process.Pid
	syscall.Kill(pid, syscall.SIGINT)
	select {
	case <-clusterExited:
	case <-time.After(stopWait):
	}
	syscall.Kill(-pid, syscall.SIGKILL) // any geokvd left in the group
	<-clusterExited
}

// eventually polls cond until it holds or the convergence bound passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(convergeWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not hold within %v", what, convergeWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noCLeaks checks that every C object this package took is released once the test's DBs
// are closed (abandoned calls finish before Close returns).
func noCLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if n := liveC.Load(); n != 0 {
			t.Errorf("%d C objects (handles, iterators, returned bytes or lists, C strings) still held", n)
		}
	})
}

func b(s string) []byte { return []byte(s) }

func mustEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func joined(items [][]byte) string {
	parts := make([]string, len(items))
	for i, it := range items {
		parts[i] = string(it)
	}
	return strings.Join(parts, ",")
}
