"""Interleaved rounds for the Performance table: each row's figure beside its anchor, as ratios.

The machine is shared, so absolute times drift between runs; a ratio of two figures measured in
the same round holds better. Each round measures every contender once, in turn; a row's ratio is
the median of the per-round ratios.
"""

import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

Measure = Callable[[], Awaitable[float]]


async def interleave(rounds: int, contenders: dict[str, Measure]) -> dict[str, list[float]]:
    """Measure every contender once per round, in turn; return each one's figures by round."""
    figures: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, measure in contenders.items():
            figures[name].append(await measure())
    return figures


def median_ratio(top: list[float], bottom: list[float]) -> float:
    """Return the median of the per-round ratios ``top[i] / bottom[i]``."""
    return statistics.median(a / b for a, b in zip(top, bottom, strict=True))


def row(path: str, figure: str, anchor: str, ratio: float, aim: str, met: bool) -> None:
    """Print one Performance-table row: the figure, its anchor, the ratio and the aim."""
    verdict = "meets the aim" if met else "MISSES the aim"
    print(
        f"{path}\n  intentd {figure}\n  anchor  {anchor}\n  ratio   {ratio:.2f}x   aim {aim}: "
        f"{verdict}",
        flush=True,
    )


def median(values: list[float]) -> float:
    """Return the median of one contender's figures over the rounds."""
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
