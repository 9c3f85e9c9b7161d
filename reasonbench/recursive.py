"""The public import path ``reasonbench.recursive``, kept for plugins: the same module object as
``reasonbench.model.recursive``, where the code lives (see reasonbench/model/__init__.py)."""

import sys

from reasonbench.model import recursive as _module

sys.modules[__name__] = _module
