"""What a DP audit (training.dpaudit) may do inside the private D step, and nothing else may: insert
white-box gradient canaries into the sum of clipped gradients and observe the released noisy sum
(leakguard.dpaudit.gradient), and, for the audit's own check that it catches a broken implementation,
skip the noise while the ledger still records it. A training run has no hooks (PrivacyState.audit is
None); the audit builds them and hands them to training.loop.train.
"""
import logging
from dataclasses import dataclass
from typing import Callable

import torch

from leakguard.dpaudit.gradient import GradientCanaries

log = logging.getLogger("leakguard.train")


@dataclass
class AuditHooks:
    # (D's trainable parameter shapes, q, C) -> the white-box canaries; None: no gradient canaries
    make_canaries: Callable[[list[torch.Size], float, float], GradientCanaries] | None = None
    skip_noise: bool = False            # a deliberately broken step: no noise, while the ledger claims it
    canaries: GradientCanaries | None = None  # built by start() from the run's D

    def start(self, shapes: list[torch.Size], q: float, max_grad_norm: float) -> None:
        if self.make_canaries is not None:
            self.canaries = self.make_canaries(shapes, q, max_grad_norm)
        if self.skip_noise:
            log.warning("the private D step adds NO noise while the ledger claims it (LEAKGUARD_BROKEN_DP="
                        "skip-noise): this run has no privacy guarantee (a test of the DP audit)")

    def insert(self, summed: list[torch.Tensor], t: int) -> None:
        """Before the noise: units whose clipped gradient is C e_j join step t's sum."""
        if self.canaries is not None:
            self.canaries.insert(summed, t)

    def observe(self, summed: list[torch.Tensor]) -> None:
        """After the noise: what the audit sees of the released sum, at the canaries' coordinates."""
        if self.canaries is not None:
            self.canaries.observe(summed)
