"""Errors raised by jpegfix. Every message is one line that names what went wrong."""


class JpegfixError(Exception):
    """Base class: the CLI prints ``str(error)`` as a single line."""


class InputError(JpegfixError):
    """An input file cannot be read or restored (empty, truncated, unsupported, too large)."""


class InvalidTablesError(InputError):
    """A JPEG's quantization tables are unusable (a zero entry, a missing table)."""


class OutputError(JpegfixError):
    """An output cannot be written (folder not writable, would overwrite an input)."""


class UnknownModelError(JpegfixError):
    """A model name is not in the registry."""


class MissingWeightsError(JpegfixError):
    """A model's weights are neither shipped, cached nor downloadable."""


class DataError(JpegfixError):
    """A data set or training folder is missing or empty."""


class UnknownTableSetError(JpegfixError):
    """A quantization-table set or subset name is not known."""
