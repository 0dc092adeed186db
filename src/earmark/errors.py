"""The errors earmark raises on bad input.

Every message names the file, key or value at fault and says what to do.
"""


class EarmarkError(Exception):
    """Base class: any error caused by the user's input or configuration."""


class AudioError(EarmarkError):
    """A recording could not be read (missing, empty, corrupt, truncated, NaN)."""


class ConfigError(EarmarkError):
    """A configuration file or value is wrong (unknown key, bad type or range)."""


class OutputError(EarmarkError):
    """An output could not be written (a folder that cannot be made or written to)."""


class DataError(EarmarkError):
    """A manifest, dataset or split is unusable (no files, missing class, ...)."""
