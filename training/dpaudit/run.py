"""One audited training run: the base data with the included canaries mixed in, trained once under the
user's config (DP or not), then every canary scored two ways, and the one-run bound of each score.

    report = audit_run(cfg, canaries, included, out, matcher=..., fakes=1000)

Scores (higher: more likely in training):
    d_logit   black-box on the released D: the mean D logit over the canary's images
    release   black-box on the released G_ema: the best matcher cosine of `fakes` generated faces to the
              canary's centroid (with a matcher)
    gradient  white-box, DP runs with `gradient_canaries` > 0: canaries of their own, Dirac gradients in D's
              private step, scored on the released noisy gradients (leakguard.dpaudit.gradient)
The bounds of the scores are reported together, so the 5% error is split between them (audit_bound's
`comparisons`): the run's verdict holds at 95% over every score and every choice of guesses.
The claim is the ledger's epsilon at its delta (none for a run without DP); the bound uses that delta.
"""
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from leakguard import run_files
from leakguard.dpaudit.bound import audit_bound
from leakguard.dpaudit.gradient import GradientCanaries
from training import loop, rundir
from training.checkpoint import load_networks
from training.config import Config
from training.data.training_set import training_images
from training.distributed import Dist
from training.dp.audit_hooks import AuditHooks
from training.dpaudit.canaries import Canaries, canaries_from_record, read_canaries, write_training_zip
from training.inference import generate

log = logging.getLogger(__name__)


def base_data(cfg: Config):
    """The base training images (uint8 [N, H, W, 3]) and identities (image index when it has none)."""
    images = training_images(cfg.data)
    ids = images.identities if images.has_identities else np.arange(len(images))
    return np.concatenate([b.permute(0, 2, 3, 1).numpy() for b in images.batches(256)]), ids


@torch.no_grad()
def d_scores(D, images: np.ndarray, unit: np.ndarray, m: int, device) -> np.ndarray:
    """[m] mean D logit over each canary's images (uint8 [N, H, W, 3], canary `unit` [N]); a canary's images
    form one batch, so minibatch-stddev groups stay within it."""
    D.eval()
    out = np.zeros(m)
    for c in range(m):
        img = torch.from_numpy(images[unit == c]).permute(0, 3, 1, 2).to(device)
        x = img.float() / 127.5 - 1
        out[c] = float(D(x, torch.zeros([len(x), D.c_dim], device=device)).mean())
    return out


@torch.no_grad()
def release_scores(G_ema, matcher, canaries: Canaries, fakes: int, device) -> np.ndarray:
    """[m] best cosine of `fakes` generated faces (seeds 0..) to each canary's centroid under `matcher`."""
    pixels = torch.from_numpy(generate(G_ema, list(range(fakes)), device, batch=64)).permute(0, 3, 1, 2)
    gen = matcher.embed(pixels)                                                         # [N, D]
    emb = matcher.embed(torch.from_numpy(canaries.images).permute(0, 3, 1, 2))          # [images, D]
    centroid = torch.zeros(len(canaries), emb.shape[1]).index_add_(0, torch.from_numpy(canaries.unit), emb)
    return (F.normalize(centroid, dim=1) @ gen.T).max(dim=1).values.numpy()


def train_with_canaries(cfg: Config, canaries: Canaries, included: np.ndarray, out: Path,
                        hooks: AuditHooks | None = None):
    """Trains once on the base data plus the included canaries (OUT/train.zip), with the audit's `hooks` in
    the private D step; returns the final state."""
    images, ids = base_data(cfg)
    zip_path = write_training_zip(out / "train.zip", images, ids, canaries, included)
    cfg.data.path, cfg.data.synthfaces.overrep_identity = str(zip_path), None
    cfg.run_dir, cfg.name = str(out / "runs"), "audited"
    cfg.eval.every_kimg = None          # no evaluation: its reference sets would hold canary images
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    log.info("dp-audit: training %s on %d base images and %d included canaries (%d images)", run_dir, len(images),
             int(included.sum()), int(included[canaries.unit].sum()))
    return loop.train(cfg, Dist(), run_dir, audit=hooks), run_dir


def audit_run(cfg: Config, canaries: Canaries, included: np.ndarray, out: Path, matcher=None,
              fakes: int = 1000, gradient_canaries: int = 0, seed: int = 0, skip_noise: bool = False) -> dict:
    """`skip_noise`: train the DP run with its noise skipped while the ledger claims it (the audit's check
    of itself on a known-broken implementation; no effect without DP)."""
    def make_canaries(shapes, q, C):
        return GradientCanaries(gradient_canaries, shapes, q, C, seed)
    private = cfg.privacy.unit != "none"
    hooks = (AuditHooks(make_canaries if gradient_canaries else None, skip_noise)
             if private and (gradient_canaries or skip_noise) else None)
    state, run_dir = train_with_canaries(cfg, canaries, included, out, hooks)
    claimed = None if state.privacy is None else {"epsilon": state.privacy.ledger.epsilon(),
                                                  "delta": state.privacy.ledger.delta,
                                                  "unit": state.privacy.unit}
    white = None if not gradient_canaries else {"scores": hooks.canaries.scores.copy(),
                                                "record": hooks.canaries.record()}
    return score_run(state.D, state.G_ema, claimed, canaries, included, run_dir, matcher, fakes, state.device, white)


def score_run(D, G_ema, claimed: dict | None, canaries: Canaries, included: np.ndarray, run_dir: Path,
              matcher=None, fakes: int = 1000, device=torch.device("cpu"), white: dict | None = None) -> dict:
    """Every score of the released D (and G_ema, with a matcher; the white-box canaries' {"scores", "record"}
    when given) and its bound, set against the claim."""
    delta = claimed["delta"] if claimed else 0.0
    scores = {"d_logit": d_scores(D, canaries.images, canaries.unit, len(canaries), device)}
    who = {"d_logit": included}
    if matcher is not None:
        scores["release"], who["release"] = release_scores(G_ema, matcher, canaries, fakes, device), included
    if white is not None:
        scores["gradient"] = np.asarray(white["scores"], np.float64)
        who["gradient"] = np.asarray(white["record"]["included"], bool)
    bounds = {name: audit_bound(s, who[name], delta=delta, comparisons=len(scores)) for name, s in scores.items()}
    report = {"run": str(run_dir), "claimed": claimed, "canaries": {"source": canaries.source, "m": len(canaries),
                                                                    "included": included.astype(int).tolist()},
              "scores": {k: v.tolist() for k, v in scores.items()}, "bounds": bounds,
              "verdicts": {name: verdict(b["epsilon_lower_bound"], claimed) for name, b in bounds.items()}}
    if white is not None:
        report["gradient_canaries"] = white["record"]
    return report


def rescore(out: Path, matcher=None, fakes: int = 1000, device=torch.device("cpu")) -> dict:
    """Scores an audit's finished run again (OUT/canaries.json, OUT/runs/audited-*/): its release.pt (a DP
    run, with the claim it records) or its last snapshot (a run without DP), the same canaries rebuilt
    from the record. No training; for scores added after the run."""
    record = read_canaries(out / run_files.CANARIES)
    runs = sorted((out / "runs").glob("audited-*"))
    if len(runs) != 1:
        raise FileNotFoundError(f"{out / 'runs'}: expected one audited-* run folder, found {len(runs)}")
    run_dir = runs[0]
    release = run_dir / run_files.RELEASE
    path = release if release.is_file() else (rundir.list_snapshots(run_dir / run_files.CHECKPOINTS) or [None])[-1]
    if path is None:
        raise FileNotFoundError(f"{run_dir}: neither release.pt nor a snapshot; the audited run did not finish")
    nets = load_networks(path, map_location=device)
    privacy = nets["extra"].get("privacy") if path == release else None
    if path != release and nets["extra"]["config"]["privacy"]["unit"] != "none":
        raise FileNotFoundError(f"{run_dir}: a DP run without release.pt (it did not finish): no claim to audit")
    claimed = None if privacy is None else {k: privacy[k] for k in ("epsilon", "delta", "unit")}
    resolution = nets["D"].img_resolution
    canaries = canaries_from_record(record, resolution)
    included = np.asarray(record["included"], bool)
    return score_run(nets["D"].to(device), nets["G_ema"].to(device), claimed, canaries, included, run_dir, matcher,
                     fakes, device, _observed(out / run_files.REPORT_JSON))


def _observed(report: Path) -> dict | None:
    """White-box scores a finished audit observed during training (they cannot be computed again)."""
    old = json.loads(report.read_text()) if report.is_file() else {}
    return {"scores": old["scores"]["gradient"], "record": old["gradient_canaries"]} if "gradient_canaries" in old \
        else None


def verdict(bound: float, claimed: dict | None) -> str:
    if claimed is None:
        return (f"no claim (trained without DP): at 95% confidence this run leaks at least epsilon {bound:.2f} about a "
                f"canary")
    if bound <= claimed["epsilon"]:
        return f"consistent: lower bound {bound:.2f} <= claimed epsilon {claimed['epsilon']:.2f}"
    return (f"VIOLATED: lower bound {bound:.2f} > claimed epsilon {claimed['epsilon']:.2f}: the implementation or its "
            f"accounting does not deliver the claimed guarantee")
