"""White-box canaries of the one-run audit: Dirac gradient canaries (Steinke, Nasr & Jagielski 2023, Sec. 6;
Nasr et al. 2023 "Tight auditing of differentially private machine learning").

Each of m canaries owns one coordinate j of D's parameters and is included with probability 1/2. In
every private step an included canary is sampled like any unit, with probability q, and then adds the
gradient C e_j: a unit whose clipped gradient has the largest norm clipping allows, all of it on its own
coordinate. The auditor sees what DP-SGD releases at every step, the noisy sum of clipped gradients,
and scores canary i by the sum over steps of that sum's coordinate j_i. Included canaries gain about
q T C; every canary's score carries the noise, N(0, T sigma^2 C^2), and whatever the data's gradients
put on its coordinate. The canaries are units of the guarantee like any other (sampled at the same q,
clipped to the same C), so the claimed (epsilon, delta) covers them and the bound of bound.py applies:
a correct step keeps it at or below the claim, while a step that skips the noise lets it reach the most
m canaries can show.

    canaries = GradientCanaries(m=1000, shapes=[p.shape for p in params], q=q, C=C, seed=0)
    canaries.insert(summed, t)     # after clipping, before the noise: the sampled included canaries' C e_j
    canaries.observe(summed)       # after the noise: the released sum, coordinate by coordinate
    canaries.scores                # [m], canaries.included [m]

The canaries move D's parameters a little (their gradients are real updates): use them in audit runs
only. They live in memory: an audit run is not resumed.
"""
from typing import Sequence

import numpy as np
import torch


class GradientCanaries:
    """m Dirac gradient canaries over parameters of the given shapes (module doc)."""

    def __init__(self, m: int, shapes: Sequence[torch.Size], q: float, C: float, seed: int = 0):
        sizes = [int(np.prod(s)) for s in shapes]
        if m < 2 or m > sum(sizes):
            raise ValueError(f"gradient canaries: need 2 <= m <= {sum(sizes)} (D's parameters), got m={m}")
        if not (0 < q <= 1 and C > 0):
            raise ValueError(f"gradient canaries: need q in (0, 1] and C > 0, got q={q}, C={C}")
        rng = np.random.default_rng([seed, 0x6AD])
        flat = np.sort(rng.choice(sum(sizes), size=m, replace=False))       # [m] distinct coordinates
        self.included = rng.random(m) < 0.5                                 # [m] each in with probability 1/2
        starts = np.cumsum([0] + sizes)
        self.param = np.searchsorted(starts, flat, side="right") - 1         # [m] which parameter
        self.offset = flat - starts[self.param]                              # [m] where in it
        self.coordinate = flat
        self.q, self.C, self.seed, self.m = float(q), float(C), seed, m
        self.scores = np.zeros(m)
        self.steps = 0

    def sampled(self, step: int) -> np.ndarray:
        """bool [m]: the included canaries in private step `step` (Poisson, rate q, from the canary seed)."""
        draw = np.random.default_rng([self.seed, 0x5A3, step]).random(self.m) < self.q
        return draw & self.included

    def insert(self, summed: Sequence[torch.Tensor], step: int) -> None:
        """Adds C e_j for each sampled included canary to the clipped sum (one tensor per parameter), in place."""
        for i in np.flatnonzero(self.sampled(step)):
            summed[self.param[i]].view(-1)[self.offset[i]] += self.C

    def observe(self, summed: Sequence[torch.Tensor]) -> None:
        """Adds the released (noisy) sum's canary coordinates to the scores."""
        for k in np.unique(self.param):
            mine = self.param == k
            values = summed[k].detach().reshape(-1)[torch.as_tensor(self.offset[mine], device=summed[k].device)]
            self.scores[mine] += values.double().cpu().numpy()
        self.steps += 1

    def record(self) -> dict:
        return {"kind": "dirac gradient canaries (white-box)", "m": self.m, "seed": self.seed, "q": self.q,
                "C": self.C, "steps": self.steps, "included": self.included.astype(int).tolist(),
                "coordinates": self.coordinate.tolist()}
