"""The public import path ``reasonbench.module``, kept for plugins: the same module object as
``reasonbench.model.module``, where the code lives (see reasonbench/model/__init__.py)."""

import sys

from reasonbench.model import module as _module

sys.modules[__name__] = _module
