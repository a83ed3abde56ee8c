"""The run's privacy state, from the config and the dataset: units, q, delta, sigma, the secret key,
the ledger, the D steps the budget still allows (derived from the ledger), and the privacy record every
checkpoint carries."""
import logging
import math
import secrets
from dataclasses import dataclass, field

from leakguard.privacy import PrivacyLedger, noise_multiplier
from training.config import Config
from training.dp.audit_hooks import AuditHooks
from training.dp.keys import D_STEP
from training.dp.units import PoissonSampler, UnitTable

log = logging.getLogger("leakguard.train")

# What a private run's artefacts are and are not covered by its (epsilon, delta): in words, and as the run
# folder's files (globs relative to it; every file a private run writes matches one of the two lists).
COVERS = ["G, G_ema, D and both optimizers' states (release.pt): post-processing of D's privatized gradients "
          "and, with leakage_reg, of the private identity banks, released once each as the ledger's identity_bank",
          "images/fakes-*.png and TensorBoard's fake grids",
          "stats.jsonl and TensorBoard scalars: losses on fakes, the leakage penalty against the private bank, "
          "privacy and progress numbers; no statistic of a real image is logged under DP (the evaluation's "
          "numbers go to eval.jsonl only)",
          "config.yaml (the settings, chosen without looking at the data)"]
COVERED_FILES = ["release.pt", "images/fakes-*.png", "stats.jsonl", "events.out.tfevents.*", "config.yaml"]
NOT_COVERED = [
    "the number of units and the dataset's name, size, resolution and label size (treated as public, as "
    "DP-SGD with Poisson sampling does)",
    "with data.skip_bad, which images were skipped as corrupt",
    "the secret seed in training snapshots (checkpoints/snapshot-*.pt), which also hold a digest of the "
    "training files' names and CRCs (to refuse them as a later DP run's init): publish release.pt, never a "
    "snapshot",
    "the evaluation during training (eval.jsonl, and report.html made from it): leak rates, membership and "
    "fidelity computed from the training images and eval.members/nonmembers, the data holder's view",
    "anything computed from the training images after training or outside the ledger (audit reports, a release "
    "filter's choices)",
    "the noise comes from torch's pseudo-random generator seeded by the secret key, not a cryptographically "
    "secure one, and floating-point Gaussian sampling has known attacks (Mironov 2012)",
]
NOT_COVERED_FILES = ["checkpoints/snapshot-*.pt", "eval.jsonl", "report.html"]
PUBLIC_INIT = ("the guarantee assumes that these initial networks (train.init) never saw the private data: they "
               "were trained on public data only, and what they learned is not counted in this run's epsilon")


def default_delta(units: int) -> float:
    """min(1e-5, 1 / (10 units)): below 1/units, so that releasing one unit's data whole is not 'private'."""
    return min(1e-5, 0.1 / units)


def planned_rounds(cfg: Config) -> int:
    """Rounds until train.kimg (the loop runs while images seen < train.kimg)."""
    return math.ceil(round(cfg.train.kimg * 1000) / cfg.train.batch)


@dataclass
class PrivacyState:
    unit: str
    sigma: float                  # noise multiplier
    max_grad_norm: float          # C
    q: float                      # Poisson rate: expected_batch / units
    expected_batch: int           # units per D step on average: the sum of clipped gradients is divided by it
    k: int                        # images per unit in a forward pass (padded)
    units_per_chunk: int
    sampler: PoissonSampler
    ledger: PrivacyLedger
    key: int                      # secret: seeds sampling and noise
    known_key: bool               # privacy.secret_seed was set: the guarantee does not hold against its reader
    target_epsilon: float | None  # privacy.target_epsilon: training stops before the ledger would pass it
    planned_steps: int            # private D steps until train.kimg, done ones included
    audit: AuditHooks | None = None  # a DP audit's hooks in the private step (training.dpaudit); never in training
    init: dict | None = None      # train.init's path and SHA-256: the public networks the run started from
    trained_parameters: int = 0   # D's parameters trained privately (train.freeze_d keeps the others fixed)
    _budget: tuple | None = field(default=None, repr=False)  # (what the budget depends on, the budget)

    def steps_allowed(self) -> int | None:
        """With target_epsilon: the most ledger steps in all (done and planned until train.kimg) that keep
        epsilon within it; None without a target. Derived from the ledger: the D steps already taken count
        on both sides, so the answer stays the same as training takes them, and the accountant runs again
        only when something else changes (another mechanism recorded, a resume loading its ledger)."""
        if self.target_epsilon is None:
            return None
        others = tuple((m.name, m.sigma, m.q, m.steps) for m in self.ledger.mechanisms if m.name != D_STEP)
        depends = (others, self.sigma, self.q, self.planned_steps, self.target_epsilon)
        if self._budget is None or self._budget[0] != depends:
            done = self.ledger.steps()
            within = self.ledger.steps_within(self.target_epsilon, self.sigma, self.q,
                                              limit=max(self.planned_steps - done, 0))
            self._budget = (depends, done + within)
        return self._budget[1]

    def record(self, units: int) -> dict:
        """The privacy record of a checkpoint (plain data)."""
        summary = self.ledger.record_summary()
        return {"unit": self.unit, **summary, "sigma": self.sigma, "q": self.q,
                "max_grad_norm": self.max_grad_norm, "expected_batch": self.expected_batch,
                "max_images_per_identity": self.k if self.unit == "identity" else 1, "units": units,
                "secret_seed": "given in the config: anyone who has it can undo the noise and the sampling, so "
                               "the guarantee does not hold" if self.known_key else "drawn from the OS",
                "covers": COVERS, "not_covered": NOT_COVERED,
                "covered_files": COVERED_FILES, "not_covered_files": NOT_COVERED_FILES,
                "trained_parameters": self.trained_parameters,
                "init": None if self.init is None else {**self.init, "assumption": PUBLIC_INIT}}


def key_words(key: int) -> list[int]:
    """A 128-bit key as four 32-bit words (plain data for the snapshot)."""
    return [(key >> (32 * i)) & 0xFFFFFFFF for i in range(4)]


def key_from_words(words: list[int]) -> int:
    return sum(int(w) << (32 * i) for i, w in enumerate(words))


@dataclass
class PrivacyPlan:
    """What the config and the dataset fix of a private run, checked: everything but the secret key."""
    table: UnitTable
    expected_batch: int
    q: float
    delta: float
    k: int
    steps: int                    # planned private D steps until train.kimg
    sigma: float


def plan_privacy(cfg: Config, dataset, source: str) -> PrivacyPlan | None:
    """None unless privacy.unit is set; every refusal that needs the data (units, the batch, delta), and sigma
    solved for privacy.target_epsilon. `leakguard train --dry-run` runs it too."""
    p = cfg.privacy
    if p.unit == "none":
        return None
    table = UnitTable(dataset, p.unit, source)
    units = len(table)
    expected = p.expected_batch or cfg.train.batch
    if expected > units:
        raise ValueError(f"privacy.expected_batch={expected} (null = train.batch) is more than the {units} units "
                         f"(privacy.unit={p.unit}) in {source}; set it below {units}")
    delta = p.delta if p.delta is not None else default_delta(units)
    if delta >= 1 / units:
        raise ValueError(f"privacy.delta={delta:g} is not below 1/units = 1/{units} = {1 / units:.3g} "
                         f"(privacy.unit={p.unit} in {source}): a mechanism that publishes one unit's data whole "
                         f"with probability delta would meet it, so the guarantee says nothing; set privacy.delta "
                         f"below {1 / units:.3g} (null: {default_delta(units):.3g})")
    k = 1 if p.unit == "image" else p.max_images_per_identity
    if p.unit == "identity" and cfg.model.mbstd_channels == 0:
        k = min(k, table.max_images())  # padding past the largest person only costs time
    q, steps = expected / units, planned_rounds(cfg) * p.d_steps_per_g
    sigma = p.noise_multiplier
    if sigma is None:
        sigma = noise_multiplier(p.target_epsilon, q, steps, delta, p.accountant)
        log.info("privacy: sigma=%.4f reaches epsilon<=%g at delta=%.3g over %d D steps at q=%.4g",
                 sigma, p.target_epsilon, delta, steps, q)
    return PrivacyPlan(table, expected, q, delta, k, steps, float(sigma))


def build_privacy(cfg: Config, dataset, batch_gpu: int, agree_key, source: str) -> PrivacyState | None:
    """None unless privacy.unit is set. `agree_key(key) -> key` makes every process use rank 0's key."""
    plan = plan_privacy(cfg, dataset, source)
    if plan is None:
        return None
    p = cfg.privacy
    known = p.secret_seed is not None
    key = p.secret_seed if known else agree_key(secrets.randbits(128))
    return PrivacyState(unit=p.unit, sigma=plan.sigma, max_grad_norm=p.max_grad_norm, q=plan.q,
                        expected_batch=plan.expected_batch, k=plan.k, units_per_chunk=max(1, batch_gpu // plan.k),
                        sampler=PoissonSampler(plan.table, plan.q, plan.k, key),
                        ledger=PrivacyLedger(plan.delta, p.accountant), key=key, known_key=known,
                        target_epsilon=p.target_epsilon, planned_steps=plan.steps)


def set_key(privacy: PrivacyState, key: int) -> None:
    """The saved key of a resumed run (sampling and noise continue their streams)."""
    privacy.key = key
    privacy.sampler.key = key
