"""The ``hypertool`` command line: the demo, answers from the local store, and ``doctor``.

:mod:`.app` parses the arguments, :mod:`.commands` runs the store-reading commands,
:mod:`.output` prints tables and trees, :mod:`.doctor` checks the setup, :mod:`.demo` runs the
workflow.
"""

from hypertool.instrumentation.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
