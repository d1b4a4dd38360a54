"""Errors raised while finding and checking a data set (defined with the others in
:mod:`advfit.errors`, which imports nothing heavy)."""

from advfit.errors import DataError

__all__ = ["DataError"]
