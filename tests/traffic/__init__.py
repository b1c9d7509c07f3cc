"""Tests of service.traffic, and what the traffic tests share."""

from __future__ import annotations

import math


def binomial_p_value(successes: int, trials: int, p: float) -> float:
    """Two-sided exact binomial test: the probability of an outcome at most as likely as this one."""

    def log_pmf(k: int) -> float:
        return (
            math.lgamma(trials + 1)
            - math.lgamma(k + 1)
            - math.lgamma(trials - k + 1)
            + (k * math.log(p) + (trials - k) * math.log1p(-p))
        )

    observed = log_pmf(successes)
    return min(1.0, sum(math.exp(q) for k in range(trials + 1) if (q := log_pmf(k)) <= observed + 1e-9))
