"""The package's version, written into every record's provenance."""

__version__ = "0.1.0"
