"""Interval statistics without torch: the leaderboard uses them on thousands of records."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 or n successes.
    """
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes {successes} not in [0, {n}]")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamp rounding noise at the ends (p = 0 or 1)
    return (max(0.0, centre - half), min(1.0, centre + half))


# Student's t, 97.5% quantile, by degrees of freedom (two-sided 95%); beyond 30: the normal's
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile(degrees: int) -> float:
    """Student's t 97.5% quantile (two-sided 95%) for ``degrees`` of freedom; infinite for none."""
    if degrees < 1:
        return math.inf
    return _T975[degrees - 1] if degrees <= len(_T975) else 1.959963984540054


def seeds_and_examples_variance(correct: list[int], n: list[int]) -> float:
    """Variance of a row's mean accuracy over its seeds under the hierarchical bootstrap: draw
    the seeds with replacement, then each drawn seed's test examples with replacement (its
    count of right answers is then Binomial(n_s, a_s)). Computed exactly instead of by drawing:

        Var = (seed variance + mean over seeds of a_s (1 - a_s) / n_s) / k

    The seed variance is the sample variance (divisor k - 1, not the bootstrap's k, which
    understates it with few seeds); a_s in the test term is (c_s + 2) / (n_s + 4) (Agresti and
    Coull), so that a seed at 0 or 100% still has test-set noise."""
    k = len(correct)
    if k == 0 or len(n) != k or any(m <= 0 for m in n):
        raise ValueError("seeds_and_examples_variance: one positive test size per seed expected")
    accuracies = [c / m for c, m in zip(correct, n)]
    mean = math.fsum(accuracies) / k
    seed_var = math.fsum((a - mean) ** 2 for a in accuracies) / (k - 1) if k > 1 else 0.0
    test_var = math.fsum(((c + 2) / (m + 4)) * (1 - (c + 2) / (m + 4)) / m for c, m in zip(correct, n)) / k
    return (seed_var + test_var) / k


def rank_interval(correct: list[int], n: list[int]) -> tuple[float, float] | None:
    """The 95% interval of a row's mean exact accuracy over its seeds that ranks it, draws its
    error bar and decides whether it differs from another row: mean +- t(k - 1) x the standard
    error of ``seeds_and_examples_variance`` (training noise and test-set noise together), clamped
    to [0, 1]. Student's t with k - 1 degrees of freedom, because the seeds are few: with one
    seed nothing measures training noise and the interval is all of [0, 1] (the row shares every
    rank). None for no seeds."""
    k = len(correct)
    if k == 0:
        return None
    if k == 1 or any(m <= 0 for m in n):  # a seed scored on no example measures nothing either
        return (0.0, 1.0)
    mean = math.fsum(c / m for c, m in zip(correct, n)) / k
    half = t_quantile(k - 1) * math.sqrt(seeds_and_examples_variance(correct, n))
    return (max(0.0, mean - half), min(1.0, mean + half))


def rank_ranges(intervals: list[tuple[float, float] | None]) -> list[tuple[int, int] | None]:
    """Ranks with ties, as arena-style leaderboards show them: a row ranks from 1 + the rows
    whose interval lies wholly above its own to N - the rows wholly below it. Rows without an
    interval (nothing measured) get None and do not count for the others."""
    known = [iv for iv in intervals if iv is not None]
    ranks: list[tuple[int, int] | None] = []
    for iv in intervals:
        if iv is None:
            ranks.append(None)
            continue
        above = sum(1 for other in known if other[0] > iv[1])
        below = sum(1 for other in known if other[1] < iv[0])
        ranks.append((1 + above, len(known) - below))
    return ranks


def told_apart(rank_a: tuple[int, int] | list[int] | None, rank_b: tuple[int, int] | list[int] | None) -> bool:
    """Whether two rows are called different: their rank ranges (``rank_ranges``) share no rank.
    Ranks and verdicts so never disagree, and a pair told apart always has disjoint intervals
    too: where the intervals of A and B overlap, no other row lies both wholly below A and wholly
    above B (that would make them disjoint), so A's worst rank is at least B's best and the
    reverse. Disjoint intervals are not always enough: a third row overlapping both can leave
    the two sharing a rank, and then they are not told apart."""
    if not rank_a or not rank_b:
        return False
    return rank_a[1] < rank_b[0] or rank_b[1] < rank_a[0]


def decode_outcomes(outcomes: dict) -> tuple[int, int]:
    """(n, bits) of a record's ``metrics.exact_by_example``: bit ``n - 1 - i`` of ``bits`` is
    example i (Python integers make the paired counts below a few bit operations)."""
    import base64

    n = int(outcomes["n"])
    data = base64.b64decode(outcomes["data"], validate=True)
    if len(data) != -(-n // 8):
        raise ValueError(f"exact_by_example: {len(data)} bytes for {n} examples")
    return n, int.from_bytes(data, "big") >> (len(data) * 8 - n)
