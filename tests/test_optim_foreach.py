"""AdamAtan2's foreach update against its per-parameter loop."""

import torch

from reasonbench.model.optim import AdamAtan2


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,), (16, 16)]
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]


def _run(foreach: bool, steps: int = 6, skip: tuple[int, ...] = ()) -> list[torch.Tensor]:
    params = _params(0)
    groups = [{"params": params[:3], "weight_decay": 0.1}, {"params": params[3:], "weight_decay": 0.0}]
    opt = AdamAtan2(groups, lr=3e-2, betas=(0.9, 0.95), foreach=foreach)
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        for i, p in enumerate(params):
            # a parameter without gradient on some steps: its step count falls behind the others'
            p.grad = None if (step, i) in skip else torch.randn(p.shape, generator=g) * 10 ** (i - 2)
        opt.step()
    return [p.detach().clone() for p in params]


def test_foreach_matches_loop():
    for a, b in zip(_run(True), _run(False)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_foreach_matches_loop_with_uneven_step_counts():
    skip = ((1, 0), (2, 0), (3, 4))
    for a, b in zip(_run(True, skip=skip), _run(False, skip=skip)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_foreach_is_the_default_and_old_groups_load():
    p = torch.nn.Parameter(torch.ones(3))
    opt = AdamAtan2([p])
    assert opt.param_groups[0]["foreach"] is True
    del opt.param_groups[0]["foreach"]  # a group saved before the option existed
    p.grad = torch.ones(3)
    opt.step()
    assert opt.state[p]["step"] == 1
