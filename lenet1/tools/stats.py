"""The statistics we report over seeds, and the paired test between two models."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy import stats


def describe(values: Sequence[float]) -> dict:
    """n, mean, sample std, 95% Student-t interval of the mean, min and max.

    With one value there is no spread to estimate: std and the interval are None, not zero.
    """
    n = len(values)
    if n == 0:
        raise ValueError("no values to describe")
    mean = math.fsum(values) / n
    result = {"n": n, "mean": mean, "std": None, "ci95": None, "min": min(values), "max": max(values)}
    if n > 1:
        std = statistics.stdev(values)
        half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)
        result.update(std=std, ci95=[mean - half, mean + half])
    return result


def mcnemar(first_correct: Sequence[bool], second_correct: Sequence[bool]) -> dict:
    """McNemar's exact test on paired per-digit outcomes of two models.

    Only the digits one model gets right and the other wrong carry information:
    under "equally accurate" each such digit goes either way with probability
    1/2, so the two-sided p-value is an exact binomial test on their split.
    """
    if len(first_correct) != len(second_correct):
        raise ValueError(
            f"paired test needs the same digits: {len(first_correct)} vs {len(second_correct)} predictions"
        )
    only_first = sum(a and not b for a, b in zip(first_correct, second_correct))
    only_second = sum(b and not a for a, b in zip(first_correct, second_correct))
    discordant = only_first + only_second
    p_value = stats.binomtest(only_first, discordant, 0.5).pvalue if discordant else 1.0
    return {
        "only_first_right": only_first,
        "only_second_right": only_second,
        "p_value": p_value,
        "accuracy_difference": (only_first - only_second) / len(first_correct),
    }
