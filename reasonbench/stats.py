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


def seed_interval(values: list[float]) -> tuple[float, float] | None:
    """95% t-interval of the mean over seeds (what another set of seeds would likely give),
    clamped to [0, 1]; None for fewer than two seeds."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = (_T975[n - 2] if n - 1 <= len(_T975) else 1.959963984540054) * std / math.sqrt(n)
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


def decode_outcomes(outcomes: dict) -> tuple[int, int]:
    """(n, bits) of a record's ``metrics.exact_by_example``: bit ``n - 1 - i`` of ``bits`` is
    example i (Python integers make the paired counts below a few bit operations)."""
    import base64

    n = int(outcomes["n"])
    data = base64.b64decode(outcomes["data"], validate=True)
    if len(data) != -(-n // 8):
        raise ValueError(f"exact_by_example: {len(data)} bytes for {n} examples")
    return n, int.from_bytes(data, "big") >> (len(data) * 8 - n)


def mcnemar(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value: of the examples exactly one of two models got right,
    ``only_first`` went to the first; under "equally good" that count is Binomial(n, 1/2)."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    k = min(only_first, only_second)
    if n > 1000:  # the normal approximation with continuity correction: exact sums get slow
        z = (abs(only_first - only_second) - 1) / math.sqrt(n)
        return min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)
