"""Adaptive augmentation probability (Karras et al. 2020, sec. 3): the overfitting heuristic
r_t = E[sign(D(real))] over the last `interval` D steps; p rises while r_t > target and falls otherwise,
fast enough to go from 0 to 1 in `kimg` thousand images.

A fixed p needs no controller: `pipe.p.fill_(p)`.
"""
import math
from typing import Callable

import torch


class AdaController:
    """ADA heuristic r_t = E[sign(D(real))]: raise p when r_t > target, lower it otherwise."""

    def __init__(self, target: float = 0.6, interval: int = 4, kimg: float = 500, initial_p: float = 0.0):
        if not (isinstance(target, (int, float)) and -1 <= target <= 1):
            raise ValueError(f"AdaController: target={target!r} must be a number in [-1, 1] (r_t is a mean sign)")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"AdaController: interval={interval!r} must be an integer >= 1 (D steps)")
        if not (isinstance(kimg, (int, float)) and math.isfinite(kimg) and kimg > 0):
            raise ValueError(f"AdaController: kimg={kimg!r} must be a positive number of kimg")
        if not (isinstance(initial_p, (int, float)) and math.isfinite(initial_p) and initial_p >= 0):
            raise ValueError(f"AdaController: initial_p={initial_p!r} must be a probability >= 0")
        self.target = float(target)
        self.interval = interval
        self.kimg = float(kimg)
        # The controller owns p while it runs (a Python float, so its steps are exact in float64);
        # the pipe's buffer is a float32 copy written at each update.
        self.p = float(initial_p)
        self.rt: float | None = None   # the last r_t, for logging
        self._steps = 0                # update() calls since the start: D steps
        self._sum = 0.0                # sum of sign(D(real)) since the last update (a tensor once accumulated)
        self._count = 0.0              # number of logits in that sum

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Adds D's logits on (augmented) reals of one chunk; called for each chunk of each D step.
        Stays on the logits' device: no synchronisation until update()."""
        self._sum = self._sum + real_logits.detach().sign().sum(dtype=torch.float64)
        self._count += real_logits.numel()

    def update(self, pipe, batch_size: int, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
               ) -> float | None:
        """Called once per D step (training round). Every `interval` calls: r_t from the signs summed since
        the last update (over ranks by `reduce`, an in-place or returning sum over processes; every rank
        must call it), then p <- max(p + sign(r_t - target) * batch_size * interval / (kimg * 1000), 0),
        written to `pipe.p`. Returns the new p, or None when this call is not an update step or no
        logits were accumulated on any rank."""
        self._steps += 1
        if self._steps % self.interval != 0:
            return None
        f64 = dict(dtype=torch.float64, device=pipe.p.device)
        stats = torch.stack([torch.as_tensor(self._sum, **f64), torch.tensor(float(self._count), **f64)])  # [sum, n]
        if reduce is not None:
            stats = reduce(stats)
        self._sum, self._count = 0.0, 0.0
        total, count = stats.tolist()
        if count == 0:
            return None
        self.rt = total / count
        sign = (self.rt > self.target) - (self.rt < self.target)  # 0 exactly at the target
        adjust = sign * (batch_size * self.interval) / (self.kimg * 1000)
        self.p = max(self.p + adjust, 0.0)
        pipe.p.fill_(self.p)
        return self.p

    def state_dict(self) -> dict:
        """Plain Python numbers (loadable with torch.load(weights_only=True)) for an exact resume."""
        return {"p": self.p, "rt": self.rt, "steps": self._steps,
                "sum": float(self._sum), "count": float(self._count)}

    def load_state_dict(self, state: dict) -> None:
        missing = {"p", "rt", "steps", "sum", "count"} - set(state)
        if missing:
            raise KeyError(f"AdaController.load_state_dict: missing {sorted(missing)}; got keys {sorted(state)}")
        self.p = float(state["p"])
        self.rt = None if state["rt"] is None else float(state["rt"])
        self._steps = int(state["steps"])
        self._sum = float(state["sum"])
        self._count = float(state["count"])
