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
    code = -1

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidArgumentError(GeokvError, ValueError):
    code = -2


class KeyTooLargeError(InvalidArgumentError):
    code = -3


class ValueTooLargeError(InvalidArgumentError):
    code = -4


class WrongModeError(GeokvError):
    code = -5


class StorageError(GeokvError, OSError):
    code = -6


class CorruptionError(GeokvError):
    code = -7


class BusyError(GeokvError):
    code = -8


class ClosedError(GeokvError):
    code = -9


class PanicError(GeokvError):
    code = -10


class UnavailableError(GeokvError):
    code = -11


class DeadlineError(GeokvError, TimeoutError):
    code = -12


class ConfigError(GeokvError):
    code = -13


class VersionError(GeokvError):
    code = -14


class ConflictError(GeokvError):
    code = -15


class OutOfMemoryError(GeokvError, MemoryError):
    code = -16


class InternalError(GeokvError):
    code = -17


_BY_CODE = {
    cls.code: cls
    for cls in (
        NotFoundError, InvalidArgumentError, KeyTooLargeError, ValueTooLargeError,
        WrongModeError, StorageError, CorruptionError, BusyError, ClosedError, PanicError,
        UnavailableError, DeadlineError, ConfigError, VersionError, ConflictError,
        OutOfMemoryError, InternalError,
    )
}


def from_code(code: int, message: str) -> GeokvError:
    """Builds the exception for a GEOKV_E* code (GeokvError for a code this version lacks)."""
    return _BY_CODE.get(code, GeokvError)(message, code)
