"""The public import path ``reasonbench.testing``, kept for plugins: the same module object as
``reasonbench.tools.conformance``, where the code lives (see reasonbench/tools/__init__.py)."""

import sys

from reasonbench.tools import conformance as _module

sys.modules[__name__] = _module
