"""One audited training run: the base data with the included canaries mixed in, trained once under the
user's config (DP or not), then every canary scored two ways, and the one-run bound of each score.

    start = outdir.plan_start(out, record, force)            # fresh, replace (--force) or resume
    report = audit_run(cfg, canaries, included, out, start, record, base_data(cfg), matcher=..., fakes=1000)

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
from training.dp.per_unit import trainable
from training.dpaudit import outdir
from training.dpaudit.canaries import Canaries, canaries_from_record, read_canaries, write_training_zip
from training.inference import generate
from training.networks.layers import MinibatchStdLayer
from training.state import build_networks

log = logging.getLogger(__name__)


def base_data(cfg: Config):
    """The base training images (uint8 [N, H, W, 3]) and identities (image index when it has none)."""
    images = training_images(cfg.data)
    ids = images.identities if images.has_identities else np.arange(len(images))
    return np.concatenate([b.permute(0, 2, 3, 1).numpy() for b in images.batches(256)]), ids


def d_parameters(cfg: Config, resolution: int, channels: int) -> int:
    """How many trainable parameters the audited run's D has: the coordinates white-box canaries can own
    (the networks are built on the CPU without touching the global random state)."""
    with torch.random.fork_rng(devices=[]):
        _, D = build_networks(cfg, resolution, channels, 0)          # train.zip has no labels
    return sum(p.numel() for _, p in trainable(D))


def unscorable(images_per_canary, group: int | None, channels: int) -> list[int]:
    """The canaries whose images D cannot score as one batch (d_scores): minibatch-stddev splits a batch of n
    into groups of min(group, n), which must divide n."""
    if channels <= 0 or group is None or group < 1:
        return []
    return [c for c, n in enumerate(images_per_canary) if n % min(group, n)]


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


def train_audited(cfg: Config, out: Path, start: outdir.Start, hooks: AuditHooks | None = None):
    """Trains (or resumes) the audited run on OUT/train.zip, with the audit's `hooks` in the private D step;
    returns the final state."""
    cfg.data.path, cfg.data.synthfaces.overrep_identity = str(out / outdir.TRAIN_ZIP), None
    cfg.run_dir, cfg.name = str(out / "runs"), "audited"
    cfg.eval.every_kimg = None          # no evaluation: its reference sets would hold canary images
    log.info("dp-audit: training %s on %s", start.run_dir, out / outdir.TRAIN_ZIP)
    return loop.train(cfg, Dist(), start.run_dir, start.resume, audit=hooks)


def audit_run(cfg: Config, canaries: Canaries, included: np.ndarray, out: Path, start: outdir.Start, record: dict,
              base: tuple | None, matcher=None, fakes: int = 1000, gradient_canaries: int = 0, seed: int = 0,
              skip_noise: bool = False) -> dict:
    """Writes the audit's files (outdir.begin; `base`: base_data(cfg), None when resumed), trains the run, and
    scores it. A run that stops before its first snapshot leaves --out as it was (outdir.undo). `skip_noise`:
    train the DP run with its noise skipped while the ledger claims it (the audit's check of itself on a
    known-broken implementation; no effect without DP)."""
    def make_canaries(shapes, q, C):
        return GradientCanaries(gradient_canaries, shapes, q, C, seed)

    def write_zip(path):
        images, ids = base
        log.info("dp-audit: %d base images and %d included canaries (%d images)", len(images), int(included.sum()),
                 int(included[canaries.unit].sum()))
        return write_training_zip(path, images, ids, canaries, included)
    private = cfg.privacy.unit != "none"
    hooks = (AuditHooks(make_canaries if gradient_canaries else None, skip_noise)
             if private and (gradient_canaries or skip_noise) else None)
    outdir.begin(out, start, record, write_zip)
    try:
        state = train_audited(cfg, out, start, hooks)
    except BaseException:           # stopped before its first snapshot: --out as it was
        outdir.undo(out, start)
        raise
    outdir.check_binding(out / run_files.CANARIES, start.run_dir)
    claimed = None if state.privacy is None else {"epsilon": state.privacy.ledger.epsilon(),
                                                  "delta": state.privacy.ledger.delta,
                                                  "unit": state.privacy.unit}
    white = None if not gradient_canaries else {"scores": hooks.canaries.scores.copy(),
                                                "record": hooks.canaries.record()}
    return score_run(state.D, state.G_ema, claimed, canaries, included, start.run_dir, matcher, fakes, state.device,
                     white)


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
    run_dir = audited_run(out, record)
    outdir.check_binding(out / run_files.CANARIES, run_dir)
    release = run_dir / run_files.RELEASE
    path = release if release.is_file() else (rundir.list_snapshots(run_dir / run_files.CHECKPOINTS) or [None])[-1]
    if path is None:
        raise FileNotFoundError(f"{run_dir}: neither release.pt nor a snapshot; the audited run did not finish")
    nets = load_networks(path, map_location=device)
    privacy = nets["extra"].get("privacy") if path == release else None
    if path != release and nets["extra"]["config"]["privacy"]["unit"] != "none":
        raise FileNotFoundError(f"{run_dir}: a DP run without release.pt (it did not finish): no claim to audit")
    claimed = None if privacy is None else {k: privacy[k] for k in ("epsilon", "delta", "unit")}
    check_scorable(nets["D"], record["images_per_canary"], out / run_files.CANARIES)
    canaries = canaries_from_record(record, nets["D"].img_resolution)
    included = np.asarray(record["included"], bool)
    return score_run(nets["D"].to(device), nets["G_ema"].to(device), claimed, canaries, included, run_dir, matcher,
                     fakes, device, _observed(out / run_files.REPORT_JSON))


def check_scorable(D, images_per_canary: list, record_path: Path) -> None:
    """Refuses canaries whose images this D cannot score (unscorable), naming the record."""
    mbstd = next((m for m in D.modules() if isinstance(m, MinibatchStdLayer)), None)
    bad = unscorable(images_per_canary, mbstd.group_size, mbstd.num_channels) if mbstd is not None else []
    if bad:
        raise ValueError(f"{record_path}: canary {bad[0]} has {images_per_canary[bad[0]]} images, but the run's D "
                         f"scores a canary's images as one batch, and its minibatch-stddev groups of "
                         f"{mbstd.group_size} do not divide it; audit again with a multiple of {mbstd.group_size} "
                         "images per canary")


def audited_run(out: Path, record: dict) -> Path:
    """The run a canary record belongs to: the one it names, or for records of earlier LeakGuard versions the
    one audited-* folder."""
    if "audit" in record:
        run_dir = out / record["audit"]["run"]
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: the audited run {out / run_files.CANARIES} names is not there")
        return run_dir
    runs = outdir.audit_runs(out)
    if len(runs) != 1:
        raise FileNotFoundError(f"{out / 'runs'}: expected one audited-* run folder, found {len(runs)}")
    return runs[0]


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
