"""The fast GPU path: fused layouts in the shared blocks, regional compilation of the block
that every recursion applies, and a guard proving that a training step never waits for the
device.

* **Fused blocks** (``set_fast_path``): ``PostNormBlock`` and ``SequenceMLP`` switch to torch's
  one-kernel RMSNorm and to plain, aligned GEMMs for the MLP mixer (see ``reasonbench.nn``), and
  under autocast HRM/TRM keep their reasoning state in bfloat16 as the reference does (see
  ``RecursiveReasoningModule.segment``). On by default where the model runs on CUDA;
  ``REASONBENCH_FAST_PATH=1`` or ``0`` forces it anywhere. Off, every block runs the
  reference's operations (float32 bit-identical).
* **Regional compilation** (``compile_blocks``): only the repeated block (a ``BlockStack``: TRM's
  one network, HRM's two levels) goes through ``torch.compile`` (static shapes), not the whole
  segment, so compiling costs one small graph per grad mode and batch shape, and inductor fuses
  each residual add with its RMSNorm and each SwiGLU gate with its product. ``reasonbench bench
  --compile`` uses it; ``REASONBENCH_COMPILE=1`` turns it on for ``reasonbench run``/``eval``
  (the recursive models apply it when fitting or testing starts; ``REASONBENCH_COMPILE_MODE``
  passes a ``torch.compile`` mode, e.g. ``reduce-overhead`` for CUDA graphs). Compiled kernels
  are cached on disk and reused by later runs (``configure_compile_cache``).
* **No host synchronisation** (``no_host_sync``): raises where code would read a tensor on the
  host (``.item()``, ``bool(t)``, boolean-mask indexing, ``nonzero``, ``unique``, ``.tolist()``,
  ``.cpu()``...), each of which waits for every queued kernel on a GPU.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from reasonbench.nn.layers import BlockStack, PostNormBlock

FAST_PATH_ENV = "REASONBENCH_FAST_PATH"
COMPILE_ENV = "REASONBENCH_COMPILE"
_CHOICE = "_reasonbench_fast_path"  # an explicit set_fast_path choice, kept on the model


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


# --- fused blocks ------------------------------------------------------------------------------
def fast_path_default(device: torch.device) -> bool:
    """``REASONBENCH_FAST_PATH`` if set, else on CUDA only (the CPU keeps the reference's ops)."""
    forced = _env_flag(FAST_PATH_ENV)
    return forced if forced is not None else device.type == "cuda"


def _fuse(model: nn.Module, enabled: bool) -> None:
    # the blocks, and the recursive models (their state in the autocast dtype: see ``segment``)
    for module in model.modules():
        if isinstance(getattr(type(module), "fused", None), bool):
            module.fused = enabled


def set_fast_path(model: nn.Module, enabled: bool = True) -> None:
    """Switch the fused forms of every block of ``model`` on or off. The choice sticks:
    ``prepare`` keeps it instead of the device's default."""
    _fuse(model, enabled)
    setattr(model, _CHOICE, enabled)


def fast_path_on(model: nn.Module) -> bool:
    """Whether any part of ``model`` runs its fused form."""
    return any(getattr(m, "fused", False) is True for m in model.modules())


# --- regional compilation --------------------------------------------------------------------------
def configure_compile_cache() -> str:
    """Turn on inductor's on-disk caches (compiled kernels, FX graphs, AOTAutograd graphs), so that
    a second run of the same model and shapes loads its kernels instead of compiling them.
    They live in ``TORCHINDUCTOR_CACHE_DIR`` if set, else torch's default
    (``torchinductor_<user>`` in the system's temporary folder); returns that folder."""
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    if hasattr(inductor_config, "autograd_cache"):  # torch >= 2.5
        inductor_config.autograd_cache = True
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir
    except ImportError:  # older layouts
        from torch._inductor.utils import cache_dir  # type: ignore[no-redef]
    return str(Path(cache_dir()))


def repeated_blocks(model: nn.Module) -> list[nn.Module]:
    """What a recursion applies again and again: every ``BlockStack``, or where there is none
    (a plain transformer) every ``PostNormBlock``."""
    stacks = [m for m in model.modules() if isinstance(m, BlockStack)]
    return stacks or [m for m in model.modules() if isinstance(m, PostNormBlock)]


def compile_blocks(model: nn.Module, mode: str | None = None) -> list[str]:
    """``torch.compile`` each repeated block in place (static shapes); returns their names, [] if
    the model has none. Blocks of one class share their compiled graphs (parameters are graph
    inputs), so HRM's two levels or a transformer's layers compile once. Compiling again is a
    no-op."""
    configure_compile_cache()
    names = {id(m): name for name, m in model.named_modules()}
    compiled = []
    for block in repeated_blocks(model):
        if getattr(block, "_compiled_call_impl", None) is None:
            block.compile(dynamic=False, mode=mode)
        compiled.append(names[id(block)])
    return compiled


def compiled_blocks(model: nn.Module) -> list[str]:
    """Names of the submodules compiled in place."""
    return [name for name, m in model.named_modules() if getattr(m, "_compiled_call_impl", None) is not None]


def prepare(model: nn.Module) -> dict[str, Any]:
    """The fast path as configured, for a model about to fit or test on its device: fused blocks
    by ``set_fast_path``'s choice or ``fast_path_default``; compiled blocks if
    ``REASONBENCH_COMPILE`` says so. Returns what it applied."""
    choice = getattr(model, _CHOICE, None)
    _fuse(model, fast_path_default(next(model.parameters()).device) if choice is None else choice)
    if _env_flag(COMPILE_ENV):
        compile_blocks(model, os.environ.get("REASONBENCH_COMPILE_MODE") or None)
    return {"fast_path": fast_path_on(model), "compiled": compiled_blocks(model)}


# --- no host synchronisation ---------------------------------------------------------------------
class HostSyncError(RuntimeError):
    """Code read a device tensor on the host inside a region that must not wait for the device."""


# aten ops that read device memory on the host: a scalar, or an output size that depends on values
_SYNCING_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique", "_unique2", "unique_dim",
                "unique_consecutive", "unique_dim_consecutive", "equal", "allclose", "is_nonzero",
                "repeat_interleave"}
_SYNCING_METHODS = {"item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__"}


def _is_mask(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dtype in (torch.bool, torch.uint8)


class _SyncingOps(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        if name == "repeat_interleave" and kwargs.get("output_size") is not None:
            pass  # the output size is given: no read
        elif name in _SYNCING_OPS:
            raise HostSyncError(f"aten.{name} reads device memory on the host")
        elif name in ("index", "index_put", "index_put_", "_index_put_impl_") and len(args) > 1 \
                and any(_is_mask(i) for i in (args[1] or ()) if i is not None):
            raise HostSyncError(f"aten.{name} with a boolean mask (its output size depends on the mask's values)")
        return func(*args, **kwargs)


def _to_host(args: tuple, kwargs: dict) -> bool:
    """Whether a ``Tensor.to`` call names the CPU as its target."""
    targets = [*args, kwargs.get("device")]
    return any((isinstance(t, str) and t.startswith("cpu")) or (isinstance(t, torch.device) and t.type == "cpu")
               for t in targets)


class _SyncingMethods(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = getattr(func, "__name__", "")
        if args and isinstance(args[0], torch.Tensor):
            if name in _SYNCING_METHODS:
                raise HostSyncError(f"Tensor.{name} reads the tensor on the host")
            if name == "to" and _to_host(args[1:], kwargs or {}):
                raise HostSyncError("Tensor.to the CPU reads the tensor on the host")
        return func(*args, **(kwargs or {}))


@contextmanager
def no_host_sync() -> Iterator[None]:
    """Raise ``HostSyncError`` at any host read of a tensor inside the block (on any device: the
    CPU's tensors stand for the GPU's, so that a test on the CPU proves a GPU step sync-free)."""
    with _SyncingMethods(), _SyncingOps():
        yield
