"""Issue 10 from Python: the DB is a real MutableMapping, bad arguments get our own
exceptions, the store survives other spellings, close racing threads, fork, shared
iterators and damage, and the library logs through ``logging``, never to stdout."""
from __future__ import annotations

import collections.abc
import inspect
import logging
import os
import pathlib
import subprocess
import sys
import threading

import pytest

import geokv


@pytest.fixture
def db(tmp_path):
    with geokv.open(tmp_path / "db") as handle:
        yield handle


# -- item 9: a MutableMapping ------------------------------------------------------------------

def test_db_is_a_mutable_mapping(db):
    assert isinstance(db, collections.abc.MutableMapping)
    assert len(db) == 0
    db.update({b"a": b"1"}, b="2")  # a mapping and keywords
    db.update([(b"c", b"3")])       # pairs
    assert len(db) == 3
    assert dict(db) == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert db == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert db.pop(b"a") == b"1"
    assert db.pop(b"a", b"gone") == b"gone"
    with pytest.raises(KeyError):
        db.pop(b"a")
    assert db.setdefault(b"d", b"4") == b"4"
    assert db.setdefault(b"d", b"other") == b"4"
    key, value = db.popitem()
    assert (key, value) == (b"b", b"2")  # the first key in order
    assert list(db.keys()) == [b"c", b"d"]
    assert list(db.values()) == [b"3", b"4"]
    assert list(db.items()) == [(b"c", b"3"), (b"d", b"4")]
    assert (b"c", b"3") in db.items() and b"d" in db.keys()
    assert len(db.keys(b"c")) == 1
    db.clear()
    assert len(db) == 0 and list(db) == []
    with pytest.raises(KeyError):
        db.popitem()


def test_clear_walks_more_than_one_page(db):
    for i in range(2500):
        db[f"k{i:05d}"] = b"v"
    assert len(db) == 2500
    db.clear()
    assert len(db) == 0


def test_membership_of_impossible_keys_is_false(tmp_path):
    with geokv.open(tmp_path / "db", key_bytes_max=8) as db:
        assert "" not in db
        assert b"" not in db
        assert b"x" * 9 not in db
        assert None not in db and 3 not in db


def test_paths_may_be_pathlike_or_bytes(tmp_path):
    with geokv.open(pathlib.Path(tmp_path) / "p") as db:
        db[b"k"] = b"v"
    with geokv.open(os.fsencode(tmp_path / "p")) as db:
        assert db[b"k"] == b"v"
    with pytest.raises(TypeError, match="path must be"):
        geokv.open(42)  # type: ignore[arg-type]


def test_wrong_types_are_our_own_type_errors(db):
    for call in (lambda: db.put(1, b"v"), lambda: db.put(b"k", 1), lambda: db.get(None),
                 lambda: db.delete(3.5), lambda: db.keys(7)):
        with pytest.raises(TypeError) as info:
            call()
        assert "incompatible function arguments" not in str(info.value)
        assert "must be" in str(info.value)
    db[b"ba"] = bytearray(b"xy")
    db[b"mv"] = memoryview(b"zz")
    assert db[b"ba"] == b"xy" and db[b"mv"] == b"zz"


def test_option_types_and_ranges(tmp_path):
    with pytest.raises(TypeError):
        geokv.open(tmp_path / "o", key_bytes_max="4096")  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        geokv.open(tmp_path / "o", commit_timeout_ms=1 << 32)
    with pytest.raises(geokv.InvalidArgumentError):  # a ValueError
        geokv.open(tmp_path / "o", key_bytes_max=-1)
    with pytest.raises(geokv.ConfigError):
        geokv.open(tmp_path / "o", key_bytes_max=65537)
    with pytest.raises(geokv.ConfigError):
        geokv.open(tmp_path / "o", value_bytes_max=(64 << 20) + 1)
    with pytest.raises(geokv.ConfigError):
        geokv.open(tmp_path / "o", commit_timeout_ms=3600001)
    with geokv.open(tmp_path / "o", key_bytes_max=65536, value_bytes_max=64 << 20,
                    commit_timeout_ms=3600000) as db:
        db[b"k" * 65536] = b"v"
        with pytest.raises(geokv.KeyTooLargeError):
            db[b"k" * 65537] = b"v"


def test_connect_arguments():
    with pytest.raises(TypeError, match="endpoints must be"):
        geokv.connect(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="endpoint must be a str"):
        geokv.connect([b"tcp://127.0.0.1:7200"])  # type: ignore[list-item]
    with pytest.raises(geokv.InvalidArgumentError, match="port"):
        geokv.connect("tcp://127.0.0.1:99999")
    with pytest.raises(geokv.InvalidArgumentError, match="resolve"):
        geokv.connect("tcp://no-such-host.invalid:7200")
    with pytest.raises(geokv.ConfigError):
        geokv.connect("tcp://127.0.0.1:7200", timeout_ms=3600001)
    with pytest.raises(OverflowError):
        geokv.connect("tcp://127.0.0.1:7200", timeout_ms=1 << 32)
    with geokv.connect(["tcp://127.0.0.1:1", "tcp://localhost:65535"], timeout_ms=50) as c:
        with pytest.raises(OverflowError):
            c.add(b"n", 1 << 63)
        with pytest.raises(OverflowError):
            c.add(b"n", -(1 << 63) - 1)
        with pytest.raises(TypeError):
            c.add(b"n", 1.5)  # type: ignore[arg-type]


def test_every_public_name_has_a_docstring():
    for name in geokv.__all__:
        obj = getattr(geokv, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert obj.__doc__, name
    for cls in (geokv.DB, geokv.Cluster):
        for attr, member in vars(cls).items():
            if callable(member) and not attr.startswith("_"):
                assert member.__doc__, f"{cls.__name__}.{attr}"


# -- items 1, 2, 4: spellings, close racing threads, shared iterators ----------------------------

def test_other_spellings_are_busy(tmp_path):
    path = tmp_path / "db"
    link = tmp_path / "link"
    with geokv.open(path) as first:
        first[b"k"] = b"v"
        link.symlink_to(path)
        for spelling in (str(path) + "/", str(path) + "/.", link, pathlib.Path(str(link) + "/")):
            with pytest.raises(geokv.BusyError, match="this process"):
                geokv.open(spelling)
        assert first[b"k"] == b"v"
    with geokv.open(link) as again:
        assert again[b"k"] == b"v"


def test_close_while_threads_are_inside_calls(tmp_path):
    for round_ in range(5):
        db = geokv.open(tmp_path / f"race{round_}")
        errors = []
        started = threading.Barrier(5)

        def work(t: int) -> None:
            started.wait()
            i = 0
            while True:
                try:
                    db[f"t{t}/{i % 50}"] = b"v"
                    db.get(f"t{t}/{i % 50}")
                    sum(1 for _ in db.items(f"t{t}/"))
                except geokv.ClosedError:
                    return
                except Exception as e:  # noqa: BLE001 (the test reports anything else)
                    errors.append(e)
                    return
                i += 1

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        started.wait()
        db[b"main"] = b"x"
        db.close()
        for th in threads:
            th.join()
        assert errors == []


def test_shared_iterator_hands_out_each_entry_once(db):
    n = 3000
    for i in range(n):
        db[f"k{i:05d}"] = b"v"
    it = iter(db.items())
    seen = []
    lock = threading.Lock()

    def drain() -> None:
        for key, _ in it:
            with lock:
                seen.append(key)

    threads = [threading.Thread(target=drain) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(seen) == n
    assert len(set(seen)) == n


def test_iterator_after_close_raises_closed(tmp_path):
    db = geokv.open(tmp_path / "db")
    for i in range(10):
        db[f"k{i}"] = b"v"
    it = iter(db.items())
    next(it)
    db.close()
    with pytest.raises(geokv.ClosedError):
        next(it)


# -- item 3: fork ---------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_child_of_fork_gets_forked_error_and_loses_nothing_silently(tmp_path):
    path = tmp_path / "db"
    db = geokv.open(path)
    db[b"parent"] = b"1"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        result = b"no error"
        try:
            db[b"child"] = b"2"
        except geokv.ForkedError as e:
            result = b"forked: " + str(e).encode()
        except BaseException as e:  # noqa: BLE001
            result = repr(e).encode()
        os.write(w, result)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        result = f.read()
    os.waitpid(pid, 0)
    assert result.startswith(b"forked: "), result
    assert b"new handle" in result
    db[b"parent2"] = b"3"
    assert b"child" not in db
    db.close()


# -- item 5: damage and repair ------------------------------------------------------------------

def test_damaged_store_is_corruption_at_open_and_repair_salvages(tmp_path):
    path = tmp_path / "db"
    with geokv.open(path) as db:
        for i in range(100):
            db[f"k{i}"] = b"value"
    assert geokv.repair(path) == geokv.RepairReport(0, 100)
    data = path / "data.wt"
    raw = bytearray(data.read_bytes())
    for i in range(4096, len(raw)):
        raw[i] ^= 0x5A
    data.write_bytes(bytes(raw))
    with pytest.raises(geokv.CorruptionError, match="data.wt") as info:
        geokv.open(path)
    assert "repair" in str(info.value)
    report = geokv.repair(path)
    assert report.tables_salvaged == 1
    assert report.keys_kept <= 100
    with geokv.open(path) as db:
        db[b"new"] = b"ok"
        assert db[b"new"] == b"ok"


# -- items 7, 8: logging, disk ----------------------------------------------------------------------

def test_library_logs_go_to_logging_never_stdout(tmp_path):
    code = r"""
import logging, sys, geokv, pathlib
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record)
logging.getLogger("geokv").addHandler(Keep())
logging.getLogger("geokv").setLevel(logging.DEBUG)
geokv.set_log_level(logging.DEBUG)
assert geokv.log_level() == logging.DEBUG
path = pathlib.Path(sys.argv[1])
with geokv.open(path) as db:
    db[b"k"] = b"v"
data = path / "data.wt"
raw = bytearray(data.read_bytes())
for i in range(4096, len(raw)):
    raw[i] ^= 0x5A
data.write_bytes(bytes(raw))
try:
    geokv.open(path)
except geokv.CorruptionError:
    pass
import time
deadline = time.monotonic() + 30
while not any(r.levelno >= logging.ERROR for r in records) and time.monotonic() < deadline:
    time.sleep(0.01)
sys.stderr.write("records=%d errors=%d\n" % (len(records), sum(r.levelno >= logging.ERROR for r in records)))
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "db")], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert out.stdout == b""
    assert b"errors=0" not in out.stderr and b"records=" in out.stderr


def test_log_level_round_trip():
    before = geokv.log_level()
    try:
        geokv.set_log_level(logging.ERROR)
        assert geokv.log_level() == logging.ERROR
        geokv.set_log_level(logging.CRITICAL + 1)
        assert geokv.log_level() == logging.CRITICAL + 1
        with pytest.raises(TypeError):
            geokv.set_log_level("debug")  # type: ignore[arg-type]
    finally:
        geokv.set_log_level(before)


def test_ten_keys_take_a_few_megabytes(tmp_path):
    path = tmp_path / "small"
    with geokv.open(path) as db:
        for i in range(10):
            db[f"key{i}"] = b"value"
    total = sum(p.stat().st_blocks * 512 for p in path.iterdir() if p.is_file())
    assert total <= 8 << 20, total


def test_repair_command_line(tmp_path):
    path = tmp_path / "db"
    with geokv.open(path) as db:
        db[b"k"] = b"v"
        busy = subprocess.run([sys.executable, "-m", "geokv", "repair", str(path)], capture_output=True, timeout=60)
        assert busy.returncode == 1 and b"already open" in busy.stderr
    ok = subprocess.run([sys.executable, "-m", "geokv", "repair", str(path)], capture_output=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert b"no damage found; 1 keys" in ok.stdout


def test_package_is_mypy_strict_clean_and_options_are_typed(tmp_path):
    api = pytest.importorskip("mypy.api")
    stdout, stderr, status = api.run(["--strict", "--no-incremental", "-p", "geokv"])
    assert status == 0, stdout + stderr
    typo = tmp_path / "typo.py"
    typo.write_text("import geokv\n"
                    "geokv.open('/tmp/x', durabilty='sync')\n"       # misspelt option
                    "geokv.open('/tmp/x', key_bytes_max='4096')\n")  # wrong type
    stdout, _, status = api.run(["--strict", "--no-incremental", str(typo)])
    assert status == 1
    assert 'Unexpected keyword argument "durabilty"' in stdout
    assert "key_bytes_max" in stdout
