"""The Python package against a real local cluster: `geokv local` with three regions on
loopback, started once for this module from the binary named by $GEOKV_BIN.

Every wait is bounded; the cluster is stopped (SIGINT, then SIGKILL of its process group)
whatever happens.
"""
import ctypes
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

import geokv

REGIONS = ("a", "b", "c")
READY_WAIT_S = 60
CONVERGE_WAIT_S = 20
STOP_WAIT_S = 20


def _ports_free(base):
    for port in [base + off + i for off in (0, 100, 200) for i in range(len(REGIONS))]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _pick_base_port():
    """A base port in 20000..29999 derived from the PID whose peer (+i), client (+100+i) and
    metrics (+200+i) ports are all free now (other engineers use 7100-7400)."""
    for attempt in range(200):
        base = 20000 + (os.getpid() * 11 + attempt * 131 + 5000) % 9700
        if _ports_free(base):
            return base
    raise RuntimeError("no free base port in 20000..29999")


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # any geokvd left in the group
    except ProcessLookupError:
        pass
    proc.wait()


def _die_with_parent():
    """In the child before exec: SIGINT when pytest dies, so a killed run stops its cluster."""
    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):
        pass  # not Linux: _stop still runs on every normal and failing path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Client endpoints of a running 3-region cluster, one per region."""
    binary = os.environ.get("GEOKV_BIN")
    if not binary:
        pytest.fail("GEOKV_BIN is not set: point it at the geokv command line "
                    "(e.g. GEOKV_BIN=build/dev/bin/geokv) to run the cluster tests", pytrace=False)
    if not os.access(binary, os.X_OK):
        pytest.fail(f"GEOKV_BIN={binary!r} is not an executable", pytrace=False)
    tmp = tmp_path_factory.mktemp("cluster")
    ready = tmp / "ready"
    base = _pick_base_port()
    log = open(tmp / "cluster.log", "wb")
    proc = subprocess.Popen(
        [binary, "local", "--regions", ",".join(REGIONS), "--base-port", str(base),
         "--dir", str(tmp / "data"), "--ready-file", str(ready)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + READY_WAIT_S
        while not (ready.exists() and ready.stat().st_size > 0):
            if proc.poll() is not None:
                pytest.fail("geokv local exited before it was ready:\n" +
                            (tmp / "cluster.log").read_text(errors="replace"), pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"geokv local was not ready within {READY_WAIT_S} s", pytrace=False)
            time.sleep(0.1)
        endpoints = [f"tcp://127.0.0.1:{base + 100 + i}" for i in range(len(REGIONS))]
        _warm_up(endpoints)
        yield endpoints
    finally:
        _stop(proc)
        log.close()


def _warm_up(endpoints):
    """Setup, not a check: shards elect leaders right after start, so the first strong
    writes may be refused with UnavailableError for a moment."""
    deadline = time.monotonic() + CONVERGE_WAIT_S
    with geokv.connect(endpoints) as c:
        for i in range(16):
            while True:
                try:
                    c[f"warmup/{i}"] = b"1"
                    break
                except (geokv.UnavailableError, geokv.DeadlineError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)


@pytest.fixture(scope="module")
def regions(cluster):
    """One connection per region's node, plus the module's policy: cnt/ counters, tags/
    sets, reached by every region before the tests use them."""
    conns = [geokv.connect(e, timeout_ms=5000) for e in cluster]
    conns[0].policy_set("cnt/", "counter")
    conns[1].policy_set(b"tags/", "set")
    conns[2].policy_set("mvr/", "mvreg")
    # Reads only: a region still on the old policy answers as for a strong key.
    _eventually(lambda: all(c.get("cnt/probe") == b"0" for c in conns))
    _eventually(lambda: all(_quiet(lambda: c.smembers("tags/probe")) == set() for c in conns))
    _eventually(lambda: all(_quiet(lambda: c.mvget("mvr/probe")[0]) == [] for c in conns))
    yield conns
    for c in conns:
        c.close()


def _quiet(fn):
    try:
        return fn()
    except geokv.WrongModeError:
        return None


def _eventually(predicate):
    deadline = time.monotonic() + CONVERGE_WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, "did not converge within the bound"
        time.sleep(0.05)


def test_strong_keys_across_regions(regions):
    a, b, c = regions
    a["strong/x"] = "one"
    assert b["strong/x"] == b"one" and c.get(b"strong/x") == b"one"  # linearizable
    assert "strong/x" in c and "strong/nope" not in c
    assert a.cas("strong/c", None, b"v1") is True
    assert b.cas("strong/c", None, b"other") is False
    assert b.cas("strong/c", b"wrong", b"other") is False
    assert b.cas("strong/c", b"v1", "v2") is True
    assert c["strong/c"] == b"v2"
    assert a.add("strong/n", 5) == 5
    assert b.add("strong/n", 3) == 8
    assert c.add("strong/n", -10) == -2
    assert a["strong/n"] == b"-2"
    with pytest.raises(geokv.InvalidArgumentError):
        a.add("strong/x", 1)  # "one" is not an integer
    del b["strong/x"]
    with pytest.raises(KeyError):
        _ = a["strong/x"]
    with pytest.raises(KeyError):
        del c["strong/x"]
    c.delete("strong/x")  # idempotent


def test_counter_converges(regions):
    a, b, c = regions
    assert a.add("cnt/hits", 2) >= 2
    assert b.add("cnt/hits", 3) >= 3
    assert c.add("cnt/hits") >= 1  # delta defaults to 1
    _eventually(lambda: all(r["cnt/hits"] == b"6" for r in regions))


def test_set_converges(regions):
    a, b, c = regions
    a.sadd("tags/t", "x")
    b.sadd(b"tags/t", b"y")
    _eventually(lambda: all(r.smembers("tags/t") == {b"x", b"y"} for r in regions))
    c.srem("tags/t", "x")
    c.srem("tags/t", "never-added")
    _eventually(lambda: all(r.smembers("tags/t") == {b"y"} for r in regions))
    assert a.scontains("tags/t", "y") is True
    assert b.scontains("tags/t", b"x") is False
    assert c.smembers("tags/absent") == set()


def test_mvreg_siblings_and_resolution(regions):
    a, b, c = regions
    a.mvput("mvr/k", b"x")  # no context: concurrent with the next one
    b.mvput("mvr/k", b"y")
    _eventually(lambda: all(r.mvget("mvr/k")[0] == [b"x", b"y"] for r in regions))
    values, context = c.mvget("mvr/k")
    assert values == [b"x", b"y"] and isinstance(context, bytes) and context
    c.mvput("mvr/k", "z", context)  # replaces both
    _eventually(lambda: all(r.mvget("mvr/k")[0] == [b"z"] for r in regions))
    assert a["mvr/k"] == b"z"
    a.mvdel("mvr/k", a.mvget("mvr/k")[1])
    _eventually(lambda: all(r.mvget("mvr/k")[0] == [] for r in regions))
    with pytest.raises(geokv.InvalidArgumentError):
        a.mvput("mvr/k", b"w", b"\xff" * 11)  # not a context mvget returned


def test_wrong_mode(regions):
    a, b, c = regions
    with pytest.raises(geokv.WrongModeError):
        a["cnt/hits"] = b"7"
    with pytest.raises(geokv.WrongModeError):
        b.cas("cnt/hits", None, b"1")
    with pytest.raises(geokv.WrongModeError):
        _ = c["tags/t"]
    with pytest.raises(geokv.WrongModeError):
        a.add("tags/t", 1)
    with pytest.raises(geokv.WrongModeError):
        b.sadd("strong/c", "x")
    with pytest.raises(geokv.WrongModeError):
        c["mvr/k"] = b"v"
    with pytest.raises(geokv.WrongModeError):
        a.mvput("strong/c", b"v")
    with pytest.raises(TypeError):
        iter(a)  # a cluster is not iterable


def test_policy(regions):
    a, b, c = regions
    rules = c.policy()
    assert rules[b""] == "strong"  # the default
    assert rules[b"cnt/"] == "counter" and rules[b"tags/"] == "set"
    with pytest.raises(geokv.InvalidArgumentError):
        a.policy_set("p/", "eventual")
    a["strong/keep"] = b"1"
    with pytest.raises(geokv.InvalidArgumentError, match="strong/"):
        a.policy_set("strong/", "counter")  # holds strong data: its mode cannot change
    b.policy_set("tmp/", "lww")
    assert c.policy()[b"tmp/"] == "lww"
    c.policy_remove("tmp/")
    assert b"tmp/" not in a.policy()
    with pytest.raises(KeyError):
        a.policy_remove("never-set/")


def test_status(regions):
    lines = regions[0].status()
    assert len(lines) > 1 and "regions" in lines[0]
    # Every node of the cluster map, its health and load (docs/operations.md).
    assert any(line.startswith("cluster map: version ") for line in lines), lines
    nodes = [line for line in lines if line.startswith("node ") and " (" in line.split(":")[0]]
    assert len(nodes) == len(regions), lines
    for line in nodes:
        assert re.match(r"node \d+ \(\S+\): (up|suspect|down|draining), replicas=\d+, bytes=\d+, leading=\d+", line), line


def _node_state(db, node, state):
    """A node-state change, repeated while no leader answers or its outcome is unknown
    (draining the metadata leader moves that leadership too), as an operator does."""
    deadline = time.monotonic() + CONVERGE_WAIT_S
    while True:
        try:
            return db.node_set_state(node, state)
        except (geokv.UnavailableError, geokv.DeadlineError):
            assert time.monotonic() < deadline, "no metadata leader answered within the bound"
            time.sleep(0.1)


def test_node_states(regions):
    a, b = regions[0], regions[1]
    with pytest.raises(geokv.InvalidArgumentError):
        a.node_set_state(1, "suspect")  # the failure detector's, not an operator's
    with pytest.raises(geokv.InvalidArgumentError):
        a.node_set_state(-1, "draining")
    with pytest.raises(geokv.NotFoundError):
        _node_state(a, 99, "draining")
    with pytest.raises(geokv.InvalidArgumentError):
        _node_state(a, 2, "removed")  # an up node: drain it first
    _node_state(b, 2, "draining")
    _node_state(b, 2, "draining")  # idempotent
    with pytest.raises(geokv.ConflictError):
        _node_state(a, 2, "removed")  # it holds replicas
    _eventually(lambda: any(line.startswith("node 2 (") and "): draining," in line for line in a.status()))
    _node_state(a, 2, "up")
    _eventually(lambda: any(line.startswith("node 2 (") and "): up," in line for line in b.status()))


def test_bad_input(cluster, regions):
    a = regions[0]
    with pytest.raises(geokv.InvalidArgumentError):
        geokv.connect("")
    with pytest.raises(geokv.InvalidArgumentError):
        geokv.connect("127.0.0.1:7200")
    with pytest.raises(geokv.InvalidArgumentError):
        geokv.connect(cluster, curve_server_key="x" * 40)  # no client key pair
    with pytest.raises(geokv.InvalidArgumentError):
        geokv.connect(cluster, timeout_ms=-1)
    with pytest.raises(geokv.InvalidArgumentError):
        a[b""] = b"v"
    with pytest.raises(geokv.KeyTooLargeError):
        a[b"k" * 5000] = b"v"  # the node's key_bytes_max is 4096
    with pytest.raises(TypeError):
        a.sadd("tags/t", 42)


def test_sequence_of_endpoints_and_lifetime(cluster):
    with geokv.connect(cluster, timeout_ms=5000) as c:  # a list works as well as a string
        assert c.cas("strong/life", None, b"1") is True
        assert c["strong/life"] == b"1"
        assert "open" in repr(c)
    assert c.closed
    with pytest.raises(geokv.ClosedError):
        _ = c["strong/life"]
    c.close()  # harmless


def test_concurrent_adds_lose_nothing(cluster):
    # Threads in every region add 1 to one strong key at once. Every acknowledged add took
    # effect exactly once (each saw a distinct result, and the total counts it); an add that
    # ended in DeadlineError has an unknown outcome: at most once.
    threads, per_thread = 6, 8
    results, unknown, errors = [], [], []
    lock = threading.Lock()

    def worker(i):
        with geokv.connect(cluster[i % len(cluster)], timeout_ms=10000) as c:
            for _ in range(per_thread):
                try:
                    n = c.add("strong/concurrent", 1)
                    with lock:
                        results.append(n)
                except geokv.DeadlineError as e:
                    with lock:
                        unknown.append(e)
                except geokv.GeokvError as e:
                    with lock:
                        errors.append(e)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    assert len(results) + len(unknown) == threads * per_thread
    assert len(set(results)) == len(results), "two acknowledged adds saw the same value"
    with geokv.connect(cluster) as c:
        total = int(c["strong/concurrent"])
    assert len(results) <= total <= len(results) + len(unknown)
    assert max(results, default=0) <= total


def test_unreachable_cluster_fails_in_time():
    # Nothing listens on port 1: the request gets no answer within its deadline.
    with geokv.connect("tcp://127.0.0.1:1", timeout_ms=200) as c:
        with pytest.raises((geokv.DeadlineError, geokv.UnavailableError)):
            _ = c["k"]


def test_calls_release_the_gil(cluster):
    # A thread blocked in a request (no node answers for 3 s) must not stop this one.
    stuck = geokv.connect("tcp://127.0.0.1:1", timeout_ms=3000)
    done = threading.Event()

    def blocked():
        try:
            stuck.get("k")
        except geokv.GeokvError:
            pass
        done.set()

    t = threading.Thread(target=blocked)
    t.start()
    time.sleep(0.2)  # let it enter the call
    with geokv.connect(cluster, timeout_ms=5000) as c:
        c["strong/gil"] = b"ok"
        assert c["strong/gil"] == b"ok"
        answered_while_blocked = not done.is_set()
    t.join()
    stuck.close()
    assert answered_while_blocked


def test_embedded_store_has_no_modes(tmp_path):
    with geokv.open(str(tmp_path / "db")) as db:
        assert not hasattr(db, "sadd")  # the embedded DB does not pretend to have modes
        # Underneath, the handle is the same type; the C ABI refuses the mode operations.
        with pytest.raises(geokv.WrongModeError, match="connect to a cluster"):
            db._db.add("k", 1)
        with pytest.raises(geokv.WrongModeError):
            db._db.policy_list()

