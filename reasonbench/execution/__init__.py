"""Layer 6, running one configuration: the Trainer wiring, training, testing and the record it
writes (``runner``), checkpoints and resuming (``checkpoints``), the wall clock, attempts and
budgets (``clock``) and the progress bar (``progress``)."""
