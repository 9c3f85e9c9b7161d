"""Layer 8, the ``reasonbench`` command: parses the command line and hands each subcommand to
the layer that does the work; nothing below imports it."""

from reasonbench.cli.main import main

__all__ = ["main"]
