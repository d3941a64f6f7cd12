"""One timing method for every benchmark: alternate the variants, repeat, report each ratio's median and range.

Timing one variant after the other, once, measures whatever else the machine was doing at the time:
two same-day runs of unchanged code differed by up to 7.4x on a shared box. Here the variants run in ABBA
order (A B, then B A, ...), so neither always runs first or second and a slow spell hits both, and
each ratio is computed within a round. A ratio is reported as its median over the rounds with the
lowest and highest round beside it; when that range holds 1.0 the rounds disagree on which variant
is faster, and the claim is "no measurable difference".
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable


def alternate(variants: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1) -> dict[str, list[Any]]:
    """Call every variant once per round, in the given order on even rounds and reversed on odd ones.

    Returns each variant's results, one per round. `warmup` rounds run first and are dropped: they pay
    for imports, compilation and caches that later rounds find ready.
    """
    names = list(variants)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for round_index in range(warmup + rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            result = variants[name]()
            if round_index >= warmup:
                results[name].append(result)
    return results


def seconds(function: Callable[[], Any]) -> Callable[[], float]:
    """A variant that runs `function` and returns its wall time in seconds."""

    def timed() -> float:
        began = time.perf_counter()
        function()
        return time.perf_counter() - began

    return timed


@dataclass(frozen=True)
class Spread:
    """Median, lowest and highest of one figure over the rounds."""

    median: float
    low: float
    high: float
    rounds: int

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values), len(values))

    def as_dict(self) -> dict:
        return {"median": self.median, "low": self.low, "high": self.high, "rounds": self.rounds}

    def format(self, digits: int | None = None, unit: str = "") -> str:
        """'median (range low-high, n rounds)'; by default two decimals below 10, one above."""
        if digits is None:
            digits = 2 if abs(self.median) < 10 else 1
        return (f"{self.median:.{digits}f}{unit} (range {self.low:.{digits}f}-{self.high:.{digits}f}{unit}, "
                f"{self.rounds} rounds)")


@dataclass(frozen=True)
class Ratio(Spread):
    """A ratio of two variants' figures, taken within each round."""

    @classmethod
    def within_rounds(cls, numerators: list[float], denominators: list[float]) -> Ratio:
        if len(numerators) != len(denominators):
            raise ValueError(f"{len(numerators)} numerators for {len(denominators)} denominators")
        return cls.of([numerator / denominator for numerator, denominator in zip(numerators, denominators)])

    @property
    def measurable(self) -> bool:
        """Whether every round agrees on the ratio's side of 1.0."""
        return not self.low <= 1.0 <= self.high

    def format(self, digits: int | None = 2, unit: str = "x") -> str:
        text = super().format(digits, unit)
        return text if self.measurable else f"no measurable difference: {text}"
