"""Errors a user can fix; the entry points print their message without a traceback."""

from advfit.data.errors import DataError


class ConfigError(ValueError):
    """A config value is invalid; the message names it and what is accepted."""


UserError = (ConfigError, DataError)
