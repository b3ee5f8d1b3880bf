"""geokv: a geo-replicated key-value store, from Python.

    import geokv
    with geokv.open("/tmp/demo") as db:          # an embedded store
        db[b"user/1"] = b"ada"
        print(db[b"user/1"])              # b'ada'
        for key, value in db.items(b"user/"):
            ...

    with geokv.connect("tcp://127.0.0.1:7200") as c:   # a cluster
        c["user/1"] = "ada"               # a strong key (the default mode)
        c.cas("user/1", b"ada", "grace")  # True: swapped
        c.add("counter/visits", 1)        # a CRDT counter (per the cluster's policy)

Keys are bytes or str (str is encoded as UTF-8); values are bytes (str, bytearray and
memoryview accepted; str is stored as UTF-8). Keys come back as bytes. Every call that
touches the disk or the network releases the GIL.

Logging: the library's records go to the ``logging`` module, logger ``"geokv"``; their
level is set with ``set_log_level`` (default WARNING). Nothing is written to stdout.

Fork: a DB or Cluster belongs to the process that opened it. In a child process every
call on an inherited handle raises ForkedError; open a new handle in the child.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import ItemsView, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from typing import (Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple,
                    TypeVar, Union, overload)

from . import _errors
from ._errors import *  # noqa: F401,F403  (the exception classes are part of the API)
from ._errors import GeokvError, NotFoundError
from . import _geokv

__all__ = ["open", "connect", "repair", "RepairReport", "DB", "Cluster", "MODES", "version",
           "set_log_level", "log_level", "Key", "Value"] + [
               n for n in dir(_errors) if n.endswith("Error")]

#: A key: bytes, or str (encoded as UTF-8).
Key = Union[bytes, str]
#: A value: bytes or a bytes-like object, or str (stored as UTF-8).
Value = Union[bytes, bytearray, memoryview, str]
Bytes = Key  # the name of earlier versions
_S = TypeVar("_S", bound="_Store")
_T = TypeVar("_T")

_DURABILITY = {
    None: _geokv.DURABILITY_DEFAULT,
    "sync": _geokv.DURABILITY_SYNC,
    "write": _geokv.DURABILITY_WRITE,
    "none": _geokv.DURABILITY_NONE,
}

#: The replication modes a cluster policy can give a key prefix.
MODES = ("strong", "lww", "mvreg", "counter", "set")

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT32_MAX = (1 << 32) - 1
_UINT64_MAX = (1 << 64) - 1


def version() -> str:
    """The version of the geokv library in use ("major.minor.patch")."""
    return _geokv.VERSION


# -- argument checks: our own TypeError/ValueError/OverflowError, never pybind11's -------------

def _key(name: str, key: object) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise TypeError(f"{name} must be bytes or str, not {type(key).__name__}")


def _value(name: str, value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{name} must be bytes, a bytes-like object or str, not {type(value).__name__}")


def _int(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0 <= low:
        raise _errors.InvalidArgumentError(f"{name} must be >= 0, not {value}", -2)
    if not low <= value <= high:
        raise OverflowError(f"{name} {value} is outside [{low}, {high}]")
    return value


def _path(name: str, path: object) -> str:
    if isinstance(path, (str, bytes, os.PathLike)):
        return os.fsdecode(os.fspath(path))
    raise TypeError(f"{name} must be a str, bytes or os.PathLike path, not {type(path).__name__}")


# -- logging ------------------------------------------------------------------------------------

_PY_LEVEL = {0: 5, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR,
             5: logging.CRITICAL}
_logger = logging.getLogger("geokv")
_pump_lock = threading.Lock()
_pump: Optional[threading.Thread] = None


def _pump_records() -> None:
    while True:
        records = _geokv.log_wait(1000)
        if records is None:
            return
        for level, message in records:
            _logger.log(_PY_LEVEL.get(level, logging.ERROR), "%s", message)


def _start_logging() -> None:
    global _pump
    with _pump_lock:
        _geokv.log_start()
        _pump = threading.Thread(target=_pump_records, name="geokv-log", daemon=True)
        _pump.start()


def _stop_logging() -> None:
    with _pump_lock:
        _geokv.log_stop()
        if _pump is not None:
            _pump.join(timeout=5)


def _after_fork_in_child() -> None:
    _geokv.log_after_fork()
    _start_logging()


def set_log_level(level: int) -> None:
    """Sets the level of the library's log, as a ``logging`` level (``logging.DEBUG``,
    ``logging.WARNING``...; the default is WARNING). Records go to the ``"geokv"`` logger;
    ``logging.CRITICAL + 1`` or more turns the log off. Raises TypeError for a non-int."""
    _int("level", level, -(1 << 31), (1 << 31) - 1)
    for ours, theirs in ((0, 5), (1, logging.DEBUG), (2, logging.INFO), (3, logging.WARNING),
                         (4, logging.ERROR), (5, logging.CRITICAL)):
        if level <= theirs:
            _geokv.log_set_level(ours)
            return
    _geokv.log_set_level(6)


def log_level() -> int:
    """The library's log level as a ``logging`` level (``logging.CRITICAL + 1``: off)."""
    return _PY_LEVEL.get(_geokv.log_level(), logging.CRITICAL + 1)


_start_logging()
atexit.register(_stop_logging)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# -- repair -------------------------------------------------------------------------------------

class RepairReport(NamedTuple):
    """What ``repair`` did: how many damaged files it repaired (tables rebuilt plus journal
    files whose damaged records were dropped; 0: the store was sound) and how many keys can
    be read afterwards. Each dropped journal stretch is logged (logger ``"geokv"``, warning)
    with its file, bytes and cause."""

    tables_salvaged: int
    keys_kept: int


def repair(path: Union[str, bytes, "os.PathLike[str]"]) -> RepairReport:
    """Repairs a damaged store in directory ``path`` (which no handle may hold open):
    drops the damaged records of its journal so that recovery replays every readable write
    after them, verifies every table and rebuilds the damaged ones from what can still be
    read; the writes in damaged records and on unreadable pages are lost, so compare
    ``keys_kept`` with what you expect. Use it
    when ``open`` raises CorruptionError. Raises BusyError (open elsewhere),
    InvalidArgumentError (not a geokv store), CorruptionError (beyond repair)."""
    tables, keys = _geokv.repair(_path("path", path))
    return RepairReport(tables, keys)


# -- handles ------------------------------------------------------------------------------------

class _Store:
    """What an embedded store and a cluster connection share: single-key operations and the
    lifetime. ``self._db`` is the extension's handle."""

    _db: _geokv.Db

    def put(self, key: Key, value: Value) -> None:
        """Stores ``value`` under ``key``, durably, before returning. Raises TypeError for
        other types, InvalidArgumentError for an empty key, KeyTooLargeError /
        ValueTooLargeError beyond the limits, ClosedError after close()."""
        self._db.put(_key("key", key), _value("value", value))

    @overload
    def get(self, key: Key) -> Optional[bytes]: ...
    @overload
    def get(self, key: Key, default: Union[bytes, _T]) -> Union[bytes, _T]: ...

    def get(self, key: Key, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` (None) when absent."""
        value = self._db.get(_key("key", key))
        return default if value is None else value

    def delete(self, key: Key) -> None:
        """Deletes ``key``; deleting an absent key is not an error."""
        self._db.delete(_key("key", key))

    def __setitem__(self, key: Key, value: Value) -> None:
        self.put(key, value)

    def __getitem__(self, key: Key) -> bytes:
        value = self._db.get(_key("key", key))
        if value is None:
            raise NotFoundError(f"no such key: {key!r}", -1)
        return value

    def __delitem__(self, key: Key) -> None:
        # Two steps (not atomic): a mapping's del raises KeyError for an absent key.
        k = _key("key", key)
        if self._db.get(k) is None:
            raise NotFoundError(f"no such key: {key!r}", -1)
        self._db.delete(k)

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` is present. Anything that cannot be a key (another type, an empty
        or an oversized key) is simply absent."""
        if not isinstance(key, (bytes, str)):
            return False
        try:
            return self._db.get(_key("key", key)) is not None
        except (_errors.InvalidArgumentError, _errors.WrongModeError):
            return False

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Flushes and closes; later calls raise ClosedError. Closing twice is harmless.
        Safe while other threads are inside calls: they finish or raise ClosedError."""
        self._db.close()

    @property
    def closed(self) -> bool:
        """Whether close() was called."""
        return self._db.closed

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if getattr(self, "_db", None) is None or self.closed else "open"
        return f"<geokv.{type(self).__name__} {state}>"


class _PrefixKeys(KeysView[bytes]):
    """The keys of a DB that start with a prefix, in key order (a live view)."""

    def __init__(self, db: "DB", prefix: bytes) -> None:
        super().__init__(db)
        self._db = db
        self._prefix = prefix

    def __iter__(self) -> Iterator[bytes]:
        return (k for k, _ in self._db._scan(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self._db._scan(self._prefix))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, (bytes, str)) and _key("key", key).startswith(self._prefix) and key in self._db


class _PrefixItems(ItemsView[bytes, bytes]):
    """The (key, value) pairs of a DB whose keys start with a prefix, in key order."""

    def __init__(self, db: "DB", prefix: bytes) -> None:
        super().__init__(db)
        self._db = db
        self._prefix = prefix

    def __iter__(self) -> Iterator[Tuple[bytes, bytes]]:
        return self._db._scan(self._prefix)

    def __len__(self) -> int:
        return sum(1 for _ in self._db._scan(self._prefix))

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], (bytes, str)):
            return False
        key = _key("key", item[0])
        return key.startswith(self._prefix) and self._db.get(key) == item[1]


class _PrefixValues(ValuesView[bytes]):
    """The values of a DB whose keys start with a prefix, in key order."""

    def __init__(self, db: "DB", prefix: bytes) -> None:
        super().__init__(db)
        self._db = db
        self._prefix = prefix

    def __iter__(self) -> Iterator[bytes]:
        return (v for _, v in self._db._scan(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self._db._scan(self._prefix))


class DB(_Store, MutableMapping[bytes, bytes]):
    """An open embedded geokv store: a ``collections.abc.MutableMapping`` of bytes to bytes
    that lives in a directory. Use it as a context manager or call close().

    Everything a mapping offers works: ``db[k] = v``, ``db[k]`` (KeyError when absent),
    ``del db[k]``, ``k in db``, ``len(db)``, iteration in key order, ``keys()``, ``items()``
    and ``values()`` (optionally restricted to a key prefix), ``get``, ``pop``, ``popitem``,
    ``setdefault``, ``update`` (a mapping, pairs or keywords), ``clear``, ``==``. str keys
    are stored as UTF-8; keys come back as bytes. ``len`` and ``clear`` walk every key.

    A DB may be shared by threads, and an iterator too (its steps are serialized). One
    directory has one open DB at a time, in all processes (BusyError otherwise).
    """

    def __init__(self, path: Union[str, bytes, "os.PathLike[str]", None], *,
                 durability: Optional[str] = None, key_bytes_max: int = 0, value_bytes_max: int = 0,
                 commit_timeout_ms: int = 0,
                 config_path: Union[str, bytes, "os.PathLike[str]", None] = None) -> None:
        if durability not in _DURABILITY:
            raise _errors.InvalidArgumentError(
                f"durability must be 'sync', 'write' or 'none', not {durability!r}", -2)
        self._db = _geokv.Db(None if path is None else _path("path", path), _DURABILITY[durability],
                             _int("key_bytes_max", key_bytes_max, 0, _UINT64_MAX),
                             _int("value_bytes_max", value_bytes_max, 0, _UINT64_MAX),
                             _int("commit_timeout_ms", commit_timeout_ms, 0, _UINT32_MAX),
                             None if config_path is None else _path("config_path", config_path))

    def _scan(self, prefix: bytes) -> Iterator[Tuple[bytes, bytes]]:
        return iter(_geokv.Iter(self._db, prefix))

    # -- the mapping views, optionally restricted to a prefix -------------------------------
    def keys(self, prefix: Key = b"") -> KeysView[bytes]:
        """The keys that start with ``prefix`` (all by default), in key order."""
        return _PrefixKeys(self, _key("prefix", prefix))

    def items(self, prefix: Key = b"") -> ItemsView[bytes, bytes]:
        """The (key, value) pairs whose keys start with ``prefix``, in key order."""
        return _PrefixItems(self, _key("prefix", prefix))

    def values(self, prefix: Key = b"") -> ValuesView[bytes]:
        """The values of the keys that start with ``prefix``, in key order."""
        return _PrefixValues(self, _key("prefix", prefix))

    def __iter__(self) -> Iterator[bytes]:
        return (k for k, _ in self._scan(b""))

    def __len__(self) -> int:
        """The number of keys (walks them all)."""
        return sum(1 for _ in self._scan(b""))

    def clear(self) -> None:
        """Deletes every key, a page at a time."""
        while True:
            page = [k for k, _ in zip(self, range(1000))]
            if not page:
                return
            for k in page:
                self._db.delete(k)

    __hash__ = None  # type: ignore[assignment]  # a mutable mapping is not hashable


def _endpoints(endpoints: object) -> str:
    if isinstance(endpoints, str):
        return endpoints
    if isinstance(endpoints, (bytes, bytearray)) or not isinstance(endpoints, Iterable):
        raise TypeError("endpoints must be a str (\"tcp://host:port[,...]\") or a sequence of str, "
                        f"not {type(endpoints).__name__}")
    items = list(endpoints)
    for e in items:
        if not isinstance(e, str):
            raise TypeError(f"each endpoint must be a str, not {type(e).__name__}")
    return ",".join(items)


class Cluster(_Store):
    """A connection to a geokv cluster (see ``connect``). Use as a context manager or call
    close(). A Cluster may be shared by threads; its requests are serialized.

    Every key has the replication mode the cluster's policy gives its longest matching
    prefix (``policy()``); an operation that does not fit it raises WrongModeError.

    - strong and lww keys are a mapping: ``c[k] = v``, ``c[k]``, ``del c[k]``, ``k in c``,
      ``get``/``put``/``delete``; strong keys also take ``cas`` and ``add``.
    - counter keys: ``add(k, delta)``; ``c[k]`` reads the value as decimal bytes.
    - set keys: ``sadd``, ``srem``, ``scontains``, ``smembers``.
    - mvreg keys: ``mvget`` (the concurrent values and a causal context), ``mvput`` and
      ``mvdel`` with that context; ``c[k]`` reads one of the values.
    A cluster is not iterable and has no len(): its keys are spread over shards and regions.

    Besides the exceptions of DB: UnavailableError (no node or no quorum answered; nothing
    was applied), DeadlineError (no answer within timeout_ms; a write may or may not have
    been applied).
    """

    __iter__ = None  # not iterable, despite __getitem__

    def __init__(self, endpoints: Union[str, Sequence[str]], *, timeout_ms: int = 0,
                 curve_server_key: Optional[str] = None, curve_public_key: Optional[str] = None,
                 curve_secret_key: Optional[str] = None) -> None:
        joined = _endpoints(endpoints)
        curve = (curve_server_key, curve_public_key, curve_secret_key)
        for name, k in zip(("curve_server_key", "curve_public_key", "curve_secret_key"), curve):
            if k is not None and not isinstance(k, str):
                raise TypeError(f"{name} must be a str, not {type(k).__name__}")
        if any(k is not None for k in curve) and not all(k is not None for k in curve):
            raise _errors.InvalidArgumentError(
                "CURVE needs curve_server_key, curve_public_key and curve_secret_key together", -2)
        self._db = _geokv.Db.connect(joined, _int("timeout_ms", timeout_ms, 0, _UINT32_MAX), *curve)

    # -- strong keys (add also on counter keys) -----------------------------------------------
    def cas(self, key: Key, expected: Optional[Value], value: Value) -> bool:
        """Compare-and-set on a strong key: stores ``value`` when ``key`` holds ``expected``
        (or is absent, for ``expected=None``). True when stored, False when the current value
        differs (nothing written)."""
        return self._db.cas(_key("key", key), None if expected is None else _value("expected", expected),
                            _value("value", value))

    def add(self, key: Key, delta: int = 1) -> int:
        """Adds ``delta`` (a signed 64-bit int; OverflowError beyond) to a strong key holding
        a decimal integer (absent counts as 0) or to a counter key; returns the value after
        the add (on a counter: as the answering region sees it, which may not yet include
        other regions' adds)."""
        return self._db.add(_key("key", key), _int("delta", delta, _INT64_MIN, _INT64_MAX))

    # -- set keys ------------------------------------------------------------------------------
    def sadd(self, key: Key, element: Value) -> None:
        """Adds ``element`` to the set at ``key`` (an add wins over a concurrent remove)."""
        self._db.set_add(_key("key", key), _value("element", element))

    def srem(self, key: Key, element: Value) -> None:
        """Removes ``element`` from the set at ``key``; an absent element is no error."""
        self._db.set_remove(_key("key", key), _value("element", element))

    def scontains(self, key: Key, element: Value) -> bool:
        """Whether the answering region's replica of the set holds ``element``."""
        return self._db.set_contains(_key("key", key), _value("element", element))

    def smembers(self, key: Key) -> Set[bytes]:
        """The members of the set at ``key`` in the answering region (empty when absent)."""
        return set(self._db.set_members(_key("key", key)))

    # -- mvreg keys -----------------------------------------------------------------------------
    def mvget(self, key: Key) -> Tuple[List[bytes], bytes]:
        """The multi-value register at ``key`` in the answering region: its concurrent values
        (sorted; empty when absent) and the causal context to pass to ``mvput``/``mvdel``."""
        return self._db.mv_get(_key("key", key))

    def mvput(self, key: Key, value: Value, context: bytes = b"") -> None:
        """Writes ``value``, replacing the values ``context`` (from ``mvget``) covers; values
        written concurrently elsewhere stay as siblings."""
        self._db.mv_put(_key("key", key), _value("value", value), _value("context", context))

    def mvdel(self, key: Key, context: bytes = b"") -> None:
        """Removes the values ``context`` (from ``mvget``) covers."""
        self._db.mv_delete(_key("key", key), _value("context", context))

    # -- policy and status ---------------------------------------------------------------------
    def policy_set(self, prefix: Key, mode: str) -> None:
        """Keys under ``prefix`` use ``mode`` (one of MODES); an empty prefix sets the default.
        Raises InvalidArgumentError for an unknown mode, or when keys under the prefix hold
        data in another mode."""
        p = _key("prefix", prefix)
        if not isinstance(mode, str):
            raise TypeError(f"mode must be a str, not {type(mode).__name__}")
        if mode not in MODES:
            raise _errors.InvalidArgumentError(f"mode must be one of {MODES}, not {mode!r}", -2)
        self._db.policy_set(p, mode)

    def policy_remove(self, prefix: Key) -> None:
        """Removes the rule for exactly ``prefix`` (KeyError / NotFoundError when none)."""
        if not self._db.policy_remove(_key("prefix", prefix)):
            raise NotFoundError(f"no policy rule for prefix {prefix!r}", -1)

    def policy(self) -> Dict[bytes, str]:
        """The policy: prefix -> mode, ``b""`` mapping to the default mode."""
        return dict(self._db.policy_list())

    def node_set_state(self, node: int, state: str) -> None:
        """Admin: sets node ``node``'s state in the cluster map: ``"draining"`` (it hands its
        leaderships to other regions, e.g. before a restart), ``"up"``, ``"down"`` or
        ``"removed"`` (docs/operations.md). Idempotent. InvalidArgumentError for another
        state or a forbidden transition, NotFoundError for an unknown node, ConflictError
        for removing a node that holds replicas, PermissionDeniedError without an admin
        identity, DeadlineError when the outcome is unknown (repeat it)."""
        if not isinstance(node, int) or isinstance(node, bool) or not 0 <= node < 2**32:
            raise InvalidArgumentError(f"node must be an int in [0, 2**32), not {node!r}", -2)
        self._db.node_set_state(node, state)

    def status(self) -> List[str]:
        """The answering node's view of the cluster, as lines for people."""
        return self._db.status()


def open(path: Union[str, bytes, "os.PathLike[str]", None] = None, *,  # noqa: A001 (the natural name)
         durability: Optional[str] = None, key_bytes_max: int = 0, value_bytes_max: int = 0,
         commit_timeout_ms: int = 0,
         config_path: Union[str, bytes, "os.PathLike[str]", None] = None) -> DB:
    """Opens (creating when missing) an embedded store in directory ``path`` (a str, bytes
    or ``os.PathLike``).

    ``durability``: 'sync' (fsync before acknowledging; the default), 'write' (survives a
    process crash) or 'none'. ``key_bytes_max`` (default 4096, at most 65536),
    ``value_bytes_max`` (default 1 MiB, at most 64 MiB), ``commit_timeout_ms`` (default
    30000, at most 3600000): 0 means the default. ``config_path``: a TOML file (``path``
    may then be None when it names data_dir).

    Raises BusyError when the directory is already open (under any spelling, in any
    process), CorruptionError when the store is damaged (see ``repair``),
    InvalidArgumentError / StorageError for bad paths, ConfigError for options out of range,
    TypeError / OverflowError for wrong types and sizes.
    """
    return DB(path, durability=durability, key_bytes_max=key_bytes_max, value_bytes_max=value_bytes_max,
              commit_timeout_ms=commit_timeout_ms, config_path=config_path)


def connect(endpoints: Union[str, Sequence[str]], *, timeout_ms: int = 0,
            curve_server_key: Optional[str] = None, curve_public_key: Optional[str] = None,
            curve_secret_key: Optional[str] = None) -> Cluster:
    """Connects to a geokv cluster: ``endpoints`` are client endpoints of its nodes, as a
    comma-separated string or a sequence ("tcp://127.0.0.1:7200"). Each is checked at once
    (port in 1..65535, host resolves); the call does not wait for a node: the first request
    raises DeadlineError or UnavailableError when none answers.

    ``timeout_ms``: deadline of each request (0: 5000; at most 3600000). CURVE:
    ``curve_server_key`` (the nodes' public key, Z85) with this client's
    ``curve_public_key`` and ``curve_secret_key``. Raises TypeError for a non-str endpoint,
    InvalidArgumentError for a malformed endpoint or key, ConfigError for a timeout out of
    range.
    """
    return Cluster(endpoints, timeout_ms=timeout_ms, curve_server_key=curve_server_key,
                   curve_public_key=curve_public_key, curve_secret_key=curve_secret_key)
