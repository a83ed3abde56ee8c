"""The identity-leakage penalty: a generator loss that keeps generated faces away from the training
identities under one differentiable matcher.

    penalty = IdentityLeakagePenalty(matcher, bank, threshold=0.79, margin=0.05)
    loss = penalty(fakes)                  # [N]: one value per fake, like every loss here; no backward

For a fake x with unit embedding e = matcher(x), s = max over the bank of cos(e, row) and

    penalty(x) = max(0, s - (tau - margin))         (a hinge)

where tau is the matcher's threshold at the chosen FMR: a fake that the audit would call a match
(s >= tau) is pushed down until it sits `margin` below it. Why a hinge: it is exactly zero for fakes
that match nobody (s <= tau - margin), so it leaves them, and the fidelity they carry, alone — a
softplus would push every fake away from every training person, which is not what privacy asks and
costs fidelity; and its slope is constant above the threshold, so a fake deep inside a person's
cluster is pushed as hard as one at the edge (a squared hinge would barely move fakes just over it).
The margin (default 0.05 in cosine, about the width of the threshold's bootstrap interval) aims
below tau so that a fake does not sit on the edge where another sample of calibration people would
put the threshold. Gradients reach the generator through the matcher's differentiable alignment and
network; the bank is a constant. Several matchers: their penalties add up (leakage_terms).
"""
from dataclasses import dataclass

import torch

from leakguard.matchers.base import Matcher
from leakguard.matchers.registry import DIFFERENTIABLE
from leakguard.regularizer.bank import IdentityBank


@dataclass
class IdentityLeakagePenalty:
    matcher: Matcher             # a differentiable matcher (Matcher.differentiable)
    bank: IdentityBank           # the training identities under that matcher
    threshold: float             # tau at the chosen FMR
    margin: float = 0.05         # the hinge's zero sits at tau - margin

    def __post_init__(self):
        if not getattr(self.matcher, "differentiable", False):
            raise ValueError(f"matcher {self.matcher.name} is not differentiable; the leakage penalty needs one of "
                             f"{', '.join(DIFFERENTIABLE)}")
        if self.margin < 0:
            raise ValueError(f"leakage penalty margin={self.margin}: must be >= 0")

    @property
    def name(self) -> str:
        return self.matcher.name

    def scores(self, img: torch.Tensor) -> torch.Tensor:
        """s [N]: each fake's best cosine over the bank, differentiable in img [N, 3, H, W] (float, [-1, 1])."""
        return self.bank.best(self.matcher(img))[0]

    def from_scores(self, s: torch.Tensor) -> torch.Tensor:
        return torch.relu(s - (self.threshold - self.margin))                   # [N]

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return self.from_scores(self.scores(img))                               # [N]


@dataclass
class LeakageTerms:
    """What one pass of several penalties gives: the summed per-sample penalty and each matcher's scores."""
    penalty: torch.Tensor        # [N] sum over matchers
    scores: dict                 # matcher name -> [N] best scores (detached)
    above: dict                  # matcher name -> fraction of fakes with s >= tau


def leakage_terms(penalties: list[IdentityLeakagePenalty], img: torch.Tensor) -> LeakageTerms:
    """The penalties of several matchers on one batch of fakes, added up (one value per fake)."""
    if not penalties:
        raise ValueError("leakage penalty: no matcher")
    total, scores, above = 0, {}, {}
    for p in penalties:
        s = p.scores(img)
        total = total + p.from_scores(s)
        scores[p.name] = s.detach()
        above[p.name] = float((s.detach() >= p.threshold).float().mean())
    return LeakageTerms(total, scores, above)
