"""The human-preference leaderboard: Bradley–Terry strengths from pairwise votes, with bootstrap intervals.

Each vote says which of two methods' outputs on one input a teammate found better, or "same". Under the
Bradley–Terry model P(i beats j) = p_i / (p_i + p_j); a tie counts as half a win for each. The strengths are the
maximum-likelihood fit by Hunter's (2004) MM iterations, with a weak prior (one virtual tie against every other
method) so that a method that never lost or never won still gets a finite score. Scores are shown on the Elo
scale (400·log10 p, centred on the mean), and the 95 % interval comes from refitting on votes resampled with
replacement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

ELO = 400.0 / np.log(10.0)


@dataclass(frozen=True)
class Standing:
    method: str
    score: float  # Elo-scale strength, mean 0
    low: float  # 2.5th percentile of the bootstrap
    high: float  # 97.5th percentile
    votes: int  # votes that involved this method
    wins: float  # ties count half


def fit(methods: Sequence[str], votes: Sequence[tuple[str, str, str]], iterations: int = 200,
        prior: float = 1.0) -> np.ndarray:
    """Log-strengths (mean 0) of ``methods`` from votes ``(method_a, method_b, winner in {"a","b","same"})``."""
    index = {m: i for i, m in enumerate(methods)}
    n = len(methods)
    wins = np.full((n, n), prior / 2.0)  # wins[i, j]: times i beat j (the prior: one tie each way)
    np.fill_diagonal(wins, 0.0)
    for a, b, winner in votes:
        i, j = index[a], index[b]
        if winner == "a":
            wins[i, j] += 1
        elif winner == "b":
            wins[j, i] += 1
        else:
            wins[i, j] += 0.5
            wins[j, i] += 0.5
    games = wins + wins.T
    total_wins = wins.sum(axis=1)
    p = np.ones(n)
    for _ in range(iterations):
        denominator = (games / (p[:, None] + p[None, :])).sum(axis=1)
        updated = total_wins / np.maximum(denominator, 1e-12)
        updated /= np.exp(np.mean(np.log(updated)))
        if np.max(np.abs(updated - p)) < 1e-9:
            p = updated
            break
        p = updated
    log_p = np.log(p)
    return log_p - log_p.mean()


def standings(votes: Sequence[tuple[str, str, str]], resamples: int = 200, seed: int = 0) -> list[Standing]:
    """Every method that appears in ``votes``, best first, with its Elo-scale score and 95 % interval."""
    if not votes:
        return []
    methods = sorted({m for a, b, _ in votes for m in (a, b)})
    centre = fit(methods, votes) * ELO
    rng = np.random.default_rng(seed)
    draws = np.empty((resamples, len(methods)))
    votes = list(votes)
    for r in range(resamples):
        sample = [votes[k] for k in rng.integers(0, len(votes), len(votes))]
        draws[r] = fit(methods, sample) * ELO
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    rows = []
    for i, method in enumerate(methods):
        mine = [(a, b, w) for a, b, w in votes if method in (a, b)]
        won = sum(1.0 if (w == "a" and a == method) or (w == "b" and b == method) else 0.5 if w == "same" else 0.0
                  for a, b, w in mine)
        rows.append(Standing(method, float(centre[i]), float(low[i]), float(high[i]), len(mine), won))
    return sorted(rows, key=lambda s: -s.score)
