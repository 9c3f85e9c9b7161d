"""Layer 4, what a model plugin subclasses and calls: ``ReasoningModule`` (``module``), the
recursive segment loop with halting and deep supervision (``recursive``), the optimiser and its
schedule (``optim``), the fused evaluation paths (``fastpath``) and test-time depth x breadth
(``testtime``). Plugins import it as ``reasonbench.module``, ``reasonbench.recursive`` and
``reasonbench.optim``, the public paths that stay put whatever moves here."""
