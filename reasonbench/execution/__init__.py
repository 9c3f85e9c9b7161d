"""Layer 6, running one configuration: the run's flow, training, the test pass and writing the
record (``execute``), the task, model and evaluated weights built from a config (``build``), the
Lightning Trainer's wiring (``trainer``), the record's contents (``assemble``), the summary
printed for it (``summary``), checkpoints and resuming (``checkpoints``), the wall clock,
attempts and budgets (``clock``) and the progress bar (``progress``)."""
