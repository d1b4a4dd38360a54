"""Errors raised while finding and checking a data set."""


class DataError(ValueError):
    """A data set is missing, unreadable or malformed; the message says what to do."""
