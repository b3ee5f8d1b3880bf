"""The Python package over the C ABI: mapping behaviour, errors, limits, lifetime."""
import os
import subprocess
import sys
import threading

import pytest

import geokv


@pytest.fixture
def db(tmp_path):
    with geokv.open(str(tmp_path / "db")) as handle:
        yield handle


def test_mapping_roundtrip(db):
    db[b"user/1"] = b"ada"
    db["user/2"] = "grace"  # str keys and values are UTF-8
    assert db[b"user/1"] == b"ada"
    assert db["user/2"] == b"grace"
    assert b"user/1" in db and "user/2" in db
    assert b"user/3" not in db and 42 not in db
    del db[b"user/1"]
    assert b"user/1" not in db
    with pytest.raises(KeyError):
        _ = db[b"user/1"]
    with pytest.raises(KeyError):
        del db[b"user/1"]
    db.delete(b"user/1")  # idempotent
    assert db.get(b"missing") is None
    assert db.get(b"missing", b"fallback") == b"fallback"


def test_binary_and_unicode(db):
    key = bytes(range(256))
    db[key] = b"\x00" * 10
    assert db[key] == b"\x00" * 10
    db["clé/ünï"] = "välue"
    assert db["clé/ünï".encode()] == "välue".encode()
    db[b"empty"] = b""
    assert db[b"empty"] == b""


def test_prefix_iteration_in_order(db):
    for i in reversed(range(600)):
        db[f"item/{i:04d}"] = str(i)
    db[b"other"] = b"x"
    keys = list(db.keys(b"item/"))
    assert keys == [f"item/{i:04d}".encode() for i in range(600)]
    assert dict(db.items("item/000"))[b"item/0007"] == b"7"
    assert list(db)[-1] == b"other"
    assert list(db.values(b"other")) == [b"x"]


def test_not_found_is_a_key_error_and_a_geokv_error(db):
    with pytest.raises(geokv.NotFoundError) as info:
        _ = db[b"nope"]
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, geokv.GeokvError)
    assert info.value.code == -1


def test_limits_raise_specific_errors_and_lose_nothing(tmp_path):
    with geokv.open(str(tmp_path / "db"), key_bytes_max=8, value_bytes_max=16) as db:
        db[b"kept"] = b"safe"
        with pytest.raises(geokv.KeyTooLargeError) as info:
            db[b"123456789"] = b"v"
        assert info.value.code == -3
        assert isinstance(info.value, ValueError)
        with pytest.raises(geokv.ValueTooLargeError):
            db[b"k"] = b"x" * 17
        with pytest.raises(geokv.InvalidArgumentError):
            db[b""] = b"v"
        with pytest.raises(TypeError):
            db[b"k"] = 5
        with pytest.raises(TypeError):
            db.get(3.5)
        assert db[b"kept"] == b"safe"


def test_default_limits(db):
    db[b"k" * 4096] = b"v"
    with pytest.raises(geokv.KeyTooLargeError):
        db[b"k" * 4097] = b"v"
    db[b"big"] = b"x" * (1 << 20)
    with pytest.raises(geokv.ValueTooLargeError):
        db[b"big"] = b"x" * ((1 << 20) + 1)
    assert len(db[b"big"]) == 1 << 20


def test_second_open_is_busy_and_first_survives(tmp_path):
    path = str(tmp_path / "db")
    with geokv.open(path) as first:
        first[b"k"] = b"v"
        with pytest.raises(geokv.BusyError):
            geokv.open(path)
        assert first[b"k"] == b"v"


def test_bad_paths_and_options(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(geokv.InvalidArgumentError, match="not a directory"):
        geokv.open(str(a_file))
    with pytest.raises(geokv.StorageError):
        geokv.open("/proc/geokv-nope")
    with pytest.raises(geokv.InvalidArgumentError):
        geokv.open(str(tmp_path / "db"), durability="sometimes")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"[limits\nkey_bytes_max = \xff\n")
    with pytest.raises(geokv.ConfigError, match="bad.toml"):
        geokv.open(None, config_path=str(bad))


def test_config_file(tmp_path):
    cfg = tmp_path / "node.toml"
    cfg.write_text(f'data_dir = "{tmp_path / "from-config"}"\n[storage]\ndurability = "write"\n')
    with geokv.open(None, config_path=str(cfg)) as db:
        db[b"k"] = b"v"
    assert (tmp_path / "from-config").is_dir()


def test_use_after_close(tmp_path):
    db = geokv.open(str(tmp_path / "db"))
    db[b"k"] = b"v"
    db.close()
    assert db.closed
    db.close()  # harmless
    with pytest.raises(geokv.ClosedError):
        db[b"k"] = b"v"
    with pytest.raises(geokv.ClosedError):
        db.get(b"k")
    with geokv.open(str(tmp_path / "db")) as again:  # the lock was released
        assert again[b"k"] == b"v"


def test_durable_across_processes(tmp_path):
    path = str(tmp_path / "db")
    code = (
        "import geokv, sys\n"
        "db = geokv.open(sys.argv[1])\n"
        "db[b'from-child'] = b'yes'\n"
        "import os; os._exit(0)\n"  # no close: the write must already be durable
    )
    subprocess.run([sys.executable, "-c", code, path], check=True, timeout=60)
    with geokv.open(path) as db:
        assert db[b"from-child"] == b"yes"


def test_threads_share_a_db(db):
    def writer(t):
        for i in range(100):
            db[f"t{t}/{i}"] = b"v"

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(1 for _ in db.keys(b"t")) == 400


def test_version():
    assert geokv.version().count(".") == 2


def test_stubs_and_marker_ship():
    pkg = os.path.dirname(geokv.__file__)
    assert os.path.exists(os.path.join(pkg, "py.typed"))
    assert os.path.exists(os.path.join(pkg, "_geokv.pyi"))


def test_every_c_error_code_has_its_own_exception_class():
    """Each GEOKV_E* code of geokv.h maps to a class of its own, never the bare GeokvError."""
    import re
    from geokv import _errors

    header = os.path.join(os.path.dirname(__file__), "..", "..", "capi", "include", "geokv", "geokv.h")
    codes = {int(m.group(2)): m.group(1)
             for m in re.finditer(r"#define (GEOKV_E[A-Z]+) \((-\d+)\)", open(header).read())}
    assert len(codes) >= 19
    for code, name in codes.items():
        err = _errors.from_code(code, "message")
        assert type(err) is not geokv.GeokvError, f"{name} ({code}) has no exception class"
        assert err.code == code
    denied = _errors.from_code(-19, "admin only")
    assert isinstance(denied, geokv.PermissionDeniedError) and isinstance(denied, PermissionError)
