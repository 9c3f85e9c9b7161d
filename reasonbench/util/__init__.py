"""Layer 0, utilities every other layer may use and that import nothing of reasonbench's:
atomic file writes (``atomic``), the error kinds and their exit codes (``errors``), reading
files that may be hostile (``untrusted``), the Hugging Face Hub cache (``hub``), torch.distributed
helpers (``distributed``) and the package version (``version``)."""
