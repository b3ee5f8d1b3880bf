"""geokv: a geo-replicated key-value store, from Python.

    import geokv
    with geokv.open("/tmp/demo") as db:
        db[b"user/1"] = b"ada"
        print(db[b"user/1"])              # b'ada'
        for key, value in db.items(b"user/"):
            ...

Keys are bytes or str (str is encoded as UTF-8); values are bytes (str accepted, stored as
UTF-8). Every call that touches the disk releases the GIL.
"""
from __future__ import annotations

from typing import Iterator, Mapping, Optional, Tuple, Union

from . import _errors
from ._errors import *  # noqa: F401,F403  (the exception classes are part of the API)
from ._errors import GeokvError, NotFoundError
from . import _geokv

__all__ = ["open", "DB", "version"] + [n for n in dir(_errors) if n.endswith("Error")]

Bytes = Union[bytes, str]

_DURABILITY = {
    None: _geokv.DURABILITY_DEFAULT,
    "sync": _geokv.DURABILITY_SYNC,
    "write": _geokv.DURABILITY_WRITE,
    "none": _geokv.DURABILITY_NONE,
}


def version() -> str:
    """The version of the geokv library in use ("major.minor.patch")."""
    return _geokv.VERSION


def _check_bytes(name: str, value: object) -> None:
    if not isinstance(value, (bytes, str)):
        raise TypeError(f"{name} must be bytes or str, not {type(value).__name__}")


class DB:
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

    # -- lifetime --------------------------------------------------------------------------
    def close(self) -> None:
        """Flushes and closes; later calls raise ClosedError. Closing twice is harmless."""
        self._db.close()

    @property
    def closed(self) -> bool:
        return self._db.closed

    def __enter__(self) -> "DB":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if getattr(self, "_db", None) is None or self.closed else "open"
        return f"<geokv.DB {state}>"


def open(path: Optional[str] = None, **options: object) -> DB:  # noqa: A001 (the natural name)
    """Opens (creating when missing) a database in directory ``path``.

    Options: ``durability`` ('sync' | 'write' | 'none'), ``key_bytes_max``,
    ``value_bytes_max``, ``commit_timeout_ms``, ``config_path`` (a TOML file; ``path`` may
    then be None when it names data_dir). Raises BusyError when the directory is already
    open, InvalidArgumentError / StorageError / ConfigError for bad paths or options.
    """
    return DB(path, **options)  # type: ignore[arg-type]
