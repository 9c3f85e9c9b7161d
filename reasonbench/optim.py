"""The public import path ``reasonbench.optim``, kept for plugins: the same module object as
``reasonbench.model.optim``, where the code lives (see reasonbench/model/__init__.py)."""

import sys

from reasonbench.model import optim as _module

sys.modules[__name__] = _module
