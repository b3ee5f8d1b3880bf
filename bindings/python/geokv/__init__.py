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

Keys are bytes or str (str is encoded as UTF-8); values are bytes (str accepted, stored as
UTF-8). Every call that touches the disk or the network releases the GIL.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, TypeVar, Union

from . import _errors
from ._errors import *  # noqa: F401,F403  (the exception classes are part of the API)
from ._errors import GeokvError, NotFoundError
from . import _geokv

__all__ = ["open", "connect", "DB", "Cluster", "MODES", "version"] + [n for n in dir(_errors) if n.endswith("Error")]

Bytes = Union[bytes, str]
_S = TypeVar("_S", bound="_Store")

_DURABILITY = {
    None: _geokv.DURABILITY_DEFAULT,
    "sync": _geokv.DURABILITY_SYNC,
    "write": _geokv.DURABILITY_WRITE,
    "none": _geokv.DURABILITY_NONE,
}


#: The replication modes a cluster policy can give a key prefix.
MODES = ("strong", "lww", "mvreg", "counter", "set")


def version() -> str:
    """The version of the geokv library in use ("major.minor.patch")."""
    return _geokv.VERSION


def _check_bytes(name: str, value: object) -> None:
    if not isinstance(value, (bytes, str)):
        raise TypeError(f"{name} must be bytes or str, not {type(value).__name__}")


class _Store:
    """What an embedded store and a cluster connection share: the per-key mapping
    behaviour and the lifetime. ``self._db`` is the extension's handle."""

    _db: _geokv.Db

    # -- single-key operations -------------------------------------------------------------
    def put(self, key: Bytes, value: Bytes) -> None:
        """Stores ``value`` under ``key``, durably, before returning."""
        _check_bytes("key", key)
        _check_bytes("value", value)
        self._db.put(key, value)

    def get(self, key: Bytes, default: Optional[bytes] = None) -> Optional[bytes]:
        """The value of ``key``, or ``default`` when absent."""
        _check_bytes("key", key)
        value = self._db.get(key)
        return default if value is None else value

    def delete(self, key: Bytes) -> None:
        """Deletes ``key``; deleting an absent key is not an error."""
        _check_bytes("key", key)
        self._db.delete(key)

    def __setitem__(self, key: Bytes, value: Bytes) -> None:
        self.put(key, value)

    def __getitem__(self, key: Bytes) -> bytes:
        value = self.get(key)
        if value is None:
            raise NotFoundError(f"no such key: {key!r}", -1)
        return value

    def __delitem__(self, key: Bytes) -> None:
        # Two steps (not atomic): a mapping's del raises KeyError for an absent key.
        if self.get(key) is None:
            raise NotFoundError(f"no such key: {key!r}", -1)
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (bytes, str)):
            return False
        return self.get(key) is not None

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Flushes and closes; later calls raise ClosedError. Closing twice is harmless."""
        self._db.close()

    @property
    def closed(self) -> bool:
        return self._db.closed

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if getattr(self, "_db", None) is None or self.closed else "open"
        return f"<geokv.{type(self).__name__} {state}>"


class DB(_Store):
    """An open geokv database (an embedded node). Use as a context manager or call close().

    Mapping-like: ``db[k] = v``, ``db[k]`` (KeyError when absent), ``del db[k]`` (KeyError
    when absent), ``k in db``, ``len`` is not offered (it would scan everything). Iteration
    walks keys in order; ``items(prefix)`` / ``keys(prefix)`` restrict it to a prefix.
    A DB may be shared by threads.
    """

    def __init__(self, path: Optional[str], *, durability: Optional[str] = None,
                 key_bytes_max: int = 0, value_bytes_max: int = 0, commit_timeout_ms: int = 0,
                 config_path: Optional[str] = None) -> None:
        if durability not in _DURABILITY:
            raise _errors.InvalidArgumentError(
                f"durability must be 'sync', 'write' or 'none', not {durability!r}", -2)
        self._db = _geokv.Db(path, _DURABILITY[durability],
                             key_bytes_max, value_bytes_max, commit_timeout_ms, config_path)

    # -- iteration -------------------------------------------------------------------------
    def items(self, prefix: Bytes = b"") -> Iterator[Tuple[bytes, bytes]]:
        """(key, value) pairs whose keys start with ``prefix``, in key order."""
        _check_bytes("prefix", prefix)
        return iter(_geokv.Iter(self._db, prefix))

    def keys(self, prefix: Bytes = b"") -> Iterator[bytes]:
        return (k for k, _ in self.items(prefix))

    def values(self, prefix: Bytes = b"") -> Iterator[bytes]:
        return (v for _, v in self.items(prefix))

    def __iter__(self) -> Iterator[bytes]:
        return self.keys()

    def update(self, other: Mapping[Bytes, Bytes]) -> None:
        for k, v in other.items():
            self.put(k, v)


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
    A cluster is not iterable: its keys are spread over shards and regions.

    Besides the exceptions of DB: UnavailableError (no node or no quorum answered),
    DeadlineError (no answer within timeout_ms; a write's outcome is then unknown).
    """

    __iter__ = None  # type: ignore[assignment]  (not iterable, despite __getitem__)

    def __init__(self, endpoints: Union[str, Sequence[str]], *, timeout_ms: int = 0,
                 curve_server_key: Optional[str] = None, curve_public_key: Optional[str] = None,
                 curve_secret_key: Optional[str] = None) -> None:
        if not isinstance(endpoints, str):
            endpoints = ",".join(endpoints)
        curve = (curve_server_key, curve_public_key, curve_secret_key)
        if any(k is not None for k in curve) and not all(k is not None for k in curve):
            raise _errors.InvalidArgumentError(
                "CURVE needs curve_server_key, curve_public_key and curve_secret_key together", -2)
        if not isinstance(timeout_ms, int) or not 0 <= timeout_ms <= 0xFFFFFFFF:
            raise _errors.InvalidArgumentError(f"timeout_ms must be an int >= 0, not {timeout_ms!r}", -2)
        self._db = _geokv.Db.connect(endpoints, timeout_ms, *curve)

    # -- strong keys (add also on counter keys) -----------------------------------------------
    def cas(self, key: Bytes, expected: Optional[Bytes], value: Bytes) -> bool:
        """Compare-and-set on a strong key: stores ``value`` when ``key`` holds ``expected``
        (or is absent, for ``expected=None``). True when stored, False when the current value
        differs (nothing written)."""
        _check_bytes("key", key)
        if expected is not None:
            _check_bytes("expected", expected)
        _check_bytes("value", value)
        return self._db.cas(key, expected, value)

    def add(self, key: Bytes, delta: int = 1) -> int:
        """Adds ``delta`` to a strong key holding a decimal integer (absent counts as 0) or to
        a counter key; returns the value after the add (on a counter: as the answering region
        sees it, which may not yet include other regions' adds)."""
        _check_bytes("key", key)
        return self._db.add(key, delta)

    # -- set keys ------------------------------------------------------------------------------
    def sadd(self, key: Bytes, element: Bytes) -> None:
        """Adds ``element`` to the set at ``key`` (an add wins over a concurrent remove)."""
        _check_bytes("key", key)
        _check_bytes("element", element)
        self._db.set_add(key, element)

    def srem(self, key: Bytes, element: Bytes) -> None:
        """Removes ``element`` from the set at ``key``; an absent element is no error."""
        _check_bytes("key", key)
        _check_bytes("element", element)
        self._db.set_remove(key, element)

    def scontains(self, key: Bytes, element: Bytes) -> bool:
        """Whether the answering region's replica of the set holds ``element``."""
        _check_bytes("key", key)
        _check_bytes("element", element)
        return self._db.set_contains(key, element)

    def smembers(self, key: Bytes) -> Set[bytes]:
        """The members of the set at ``key`` in the answering region (empty when absent)."""
        _check_bytes("key", key)
        return set(self._db.set_members(key))

    # -- mvreg keys -----------------------------------------------------------------------------
    def mvget(self, key: Bytes) -> Tuple[List[bytes], bytes]:
        """The multi-value register at ``key`` in the answering region: its concurrent values
        (sorted; empty when absent) and the causal context to pass to ``mvput``/``mvdel``."""
        _check_bytes("key", key)
        return self._db.mv_get(key)

    def mvput(self, key: Bytes, value: Bytes, context: bytes = b"") -> None:
        """Writes ``value``, replacing the values ``context`` (from ``mvget``) covers; values
        written concurrently elsewhere stay as siblings."""
        _check_bytes("key", key)
        _check_bytes("value", value)
        _check_bytes("context", context)
        self._db.mv_put(key, value, context)

    def mvdel(self, key: Bytes, context: bytes = b"") -> None:
        """Removes the values ``context`` (from ``mvget``) covers."""
        _check_bytes("key", key)
        _check_bytes("context", context)
        self._db.mv_delete(key, context)

    # -- policy and status ---------------------------------------------------------------------
    def policy_set(self, prefix: Bytes, mode: str) -> None:
        """Keys under ``prefix`` use ``mode`` (one of MODES); an empty prefix sets the default.
        Raises InvalidArgumentError for an unknown mode, or when keys under the prefix hold
        data in another mode."""
        _check_bytes("prefix", prefix)
        if mode not in MODES:
            raise _errors.InvalidArgumentError(f"mode must be one of {MODES}, not {mode!r}", -2)
        self._db.policy_set(prefix, mode)

    def policy_remove(self, prefix: Bytes) -> None:
        """Removes the rule for exactly ``prefix`` (KeyError / NotFoundError when none)."""
        _check_bytes("prefix", prefix)
        if not self._db.policy_remove(prefix):
            raise NotFoundError(f"no policy rule for prefix {prefix!r}", -1)

    def policy(self) -> Dict[bytes, str]:
        """The policy: prefix -> mode, ``b""`` mapping to the default mode."""
        return dict(self._db.policy_list())

    def status(self) -> List[str]:
        """The answering node's view of the cluster, as lines for people."""
        return self._db.status()



def open(path: Optional[str] = None, **options: object) -> DB:  # noqa: A001 (the natural name)
    """Opens (creating when missing) a database in directory ``path``.

    Options: ``durability`` ('sync' | 'write' | 'none'), ``key_bytes_max``,
    ``value_bytes_max``, ``commit_timeout_ms``, ``config_path`` (a TOML file; ``path`` may
    then be None when it names data_dir). Raises BusyError when the directory is already
    open, InvalidArgumentError / StorageError / ConfigError for bad paths or options.
    """
    return DB(path, **options)  # type: ignore[arg-type]


def connect(endpoints: Union[str, Sequence[str]], *, timeout_ms: int = 0,
            curve_server_key: Optional[str] = None, curve_public_key: Optional[str] = None,
            curve_secret_key: Optional[str] = None) -> Cluster:
    """Connects to a geokv cluster: ``endpoints`` are client endpoints of its nodes, as a
    comma-separated string or a sequence ("tcp://127.0.0.1:7200"). Does not wait for a node:
    the first call raises DeadlineError or UnavailableError when none answers.

    ``timeout_ms``: deadline of each request (0: 5000). CURVE: ``curve_server_key`` (the
    nodes' public key, Z85) with this client's ``curve_public_key`` and
    ``curve_secret_key``. Raises InvalidArgumentError for malformed endpoints or keys.
    """
    return Cluster(endpoints, timeout_ms=timeout_ms, curve_server_key=curve_server_key,
                   curve_public_key=curve_public_key, curve_secret_key=curve_secret_key)
