"""The ``em`` command line: ``em run list|show|upload``, ``em login``, ``em server ...``, ``em console``."""
