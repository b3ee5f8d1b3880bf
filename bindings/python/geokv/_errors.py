"""Exceptions raised by geokv, one class per C ABI error code (GEOKV_E* in geokv.h).

Every class derives from GeokvError (which carries ``code``); where a built-in exception
means the same thing it is a base too, so ``except KeyError`` catches a missing key.
"""
from __future__ import annotations


class GeokvError(Exception):
    """Base of every geokv error. ``code`` is the negative GEOKV_E* value."""

    code: int = 0

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class NotFoundError(GeokvError, KeyError):
    """The key does not exist (GEOKV_ENOTFOUND); also a KeyError."""

    code = -1

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(GeokvError, ValueError):
    """An invalid argument: an empty key, a malformed endpoint... (GEOKV_EINVAL); also a ValueError."""

    code = -2


class KeyTooLargeError(InvalidArgumentError):
    """A key (or prefix) longer than key_bytes_max (GEOKV_EKEYSIZE)."""

    code = -3


class ValueTooLargeError(InvalidArgumentError):
    """A value longer than value_bytes_max (GEOKV_EVALSIZE)."""

    code = -4


class WrongModeError(GeokvError):
    """The operation does not fit the key's replication mode, or the handle's kind (GEOKV_EWRONGMODE)."""

    code = -5


class StorageError(GeokvError, OSError):
    """A storage or filesystem failure (GEOKV_EIO); also an OSError."""

    code = -6


class CorruptionError(GeokvError):
    """The store is damaged (the message names the file; see geokv.repair), or a message failed verification (GEOKV_ECORRUPT)."""

    code = -7


class BusyError(GeokvError):
    """The data directory is already open, by this or another process (GEOKV_EBUSY)."""

    code = -8


class ClosedError(GeokvError):
    """The handle was closed (GEOKV_ECLOSED)."""

    code = -9


class PanicError(GeokvError):
    """The storage engine stopped: close the handle and open the directory again (GEOKV_EPANIC)."""

    code = -10


class UnavailableError(GeokvError):
    """No node or no quorum answered; nothing was applied (GEOKV_EUNAVAILABLE)."""

    code = -11


class DeadlineError(GeokvError, TimeoutError):
    """No answer in time; a write may or may not have been applied (GEOKV_ETIMEOUT); also a TimeoutError."""

    code = -12


class ConfigError(GeokvError):
    """A configuration file or an option out of range (GEOKV_ECONFIG)."""

    code = -13


class VersionError(GeokvError):
    """An options version this library does not know (GEOKV_EVERSION)."""

    code = -14


class ConflictError(GeokvError):
    """A compare-and-set lost (GEOKV_ECONFLICT)."""

    code = -15


class OutOfMemoryError(GeokvError, MemoryError):
    """Out of memory (GEOKV_ENOMEM); also a MemoryError."""

    code = -16


class InternalError(GeokvError):
    """A bug in geokv; the message says where (GEOKV_EINTERNAL)."""

    code = -17


class ForkedError(GeokvError):
    """A handle inherited through fork() was used in the child: open a new one there."""

    code = -18


class PermissionDeniedError(GeokvError, PermissionError):
    """The caller's identity may not do this, e.g. a data client asking for an admin operation
    (GEOKV_EPERM); also a PermissionError."""

    code = -19


_BY_CODE = {
    cls.code: cls
    for cls in (
        NotFoundError, InvalidArgumentError, KeyTooLargeError, ValueTooLargeError,
        WrongModeError, StorageError, CorruptionError, BusyError, ClosedError, PanicError,
        UnavailableError, DeadlineError, ConfigError, VersionError, ConflictError,
        OutOfMemoryError, InternalError, ForkedError, PermissionDeniedError,
    )
}


def from_code(code: int, message: str) -> GeokvError:
    """Builds the exception for a GEOKV_E* code (GeokvError for a code this version lacks)."""
    return _BY_CODE.get(code, GeokvError)(message, code)
