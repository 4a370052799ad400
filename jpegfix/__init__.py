"""jpegfix: remove JPEG compression artifacts with table-guided and blind networks.

    import jpegfix
    restored = jpegfix.restore("photo.jpg")          # a PIL image
    restorer = jpegfix.load("qgcn-color-s")          # load once, restore many
    arrays = [restorer.restore(a) for a in arrays]   # numpy in, numpy out

See :mod:`jpegfix.api`; nothing heavy (torch, numpy) is imported until an image is restored.
"""

from jpegfix.api import ImageRestorer, load, restore

__version__ = "0.1.0"
"""The one place the version is written (pyproject.toml reads it)."""

__all__ = ["ImageRestorer", "__version__", "load", "restore"]
