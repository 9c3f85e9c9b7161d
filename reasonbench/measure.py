"""The public import path ``reasonbench.measure``, kept for plugins: the same module object as
``reasonbench.record.measure``, where the code lives (see reasonbench/record/__init__.py)."""

import sys

from reasonbench.record import measure as _module

sys.modules[__name__] = _module
