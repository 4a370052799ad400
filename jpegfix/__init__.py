"""jpegfix: remove JPEG compression artifacts with table-guided and blind networks."""

__version__ = "0.1.0"
