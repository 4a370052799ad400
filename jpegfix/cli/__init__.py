"""The ``jpegfix`` command line: one module per command, shared options in :mod:`.options`."""
