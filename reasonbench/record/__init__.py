"""Layer 3, the result record and what goes into it, without a Trainer: the schema and its
writer (``schema``, ``record_schema.json``), the metrics computed from predictions (``metrics``),
parameters, FLOPs and hardware (``measure``) and the statistics that turn counts into intervals
(``stats``). Pure functions of tensors, tasks and dicts: the leaderboard reads records through it."""
