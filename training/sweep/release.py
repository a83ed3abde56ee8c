"""Release arms of a sweep: images a user would publish without training anything new, judged like the trials.

    releases:
      public_only: {generator: runs/dp-example/public.pt}          # a public model, as it is
      filtered: {from: undefended, filter: [synth], fmr: 0.001}     # an arm's final G_ema through the release filter

An arm is run once per seed as trial <arm>_s<seed>, after that seed's training arms (the spec's `arms`):
- `generator`: a checkpoint or release.pt; its G_ema draws eval.num_fakes fakes at seeds
  eval.first_seed + i * eval.num_fakes.. (i: the seed's place in `seeds`), so each seed draws other fakes;
- `from`: the final G_ema of a training arm's trial of the same seed. With `filter` (names among eval.matchers:
  the judge that filters is named, so the others stay unseen), candidates at eval.first_seed.. (the arm's own
  evaluation fakes first) go through leakguard filter at `fmr` until eval.num_fakes are kept or `max_candidates`
  (default 20 x num_fakes) were scored; the kept images are the release.
The release is scored by the sweep's evaluation (training.evaluate.Evaluator.score) into eval.jsonl, one line
with "release" saying what was drawn and filtered. It reads the training images; no arm here has a DP record.
"""
import math
from pathlib import Path
from typing import Any, Dict, Iterator, List

import torch

from leakguard import run_files
from leakguard.atomic import finite_or_null, strict_json, write_text
from leakguard.audit.images import ImageFiles, ImageTensor
from leakguard.filter.gates import build_gate
from leakguard.filter.run import FilterSettings, read_progress, run_filter
from leakguard.torch_files import file_sha256
from training.config import Config, ConfigError

KEYS = ("generator", "from", "filter", "fmr", "max_candidates", "trunc")
FILTER_DIR = "filter"
MAX_SEED = 2 ** 32 - 1


def release_settings(arm: str, given: Dict[str, Any], seed_index: int, base: Config, arms: List[str],
                     where: str) -> dict:
    """One release arm's settings for one seed as plain data, checked; errors name the arm and the key."""
    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{where}: releases.{arm}{'.' + key if key else ''}: {what}")
    for key in given:
        need(key in KEYS, key, f"unknown key; valid keys: {', '.join(KEYS)}")
    need(("generator" in given) != ("from" in given), "", "give exactly one of generator (a checkpoint) or from "
         "(a training arm of this sweep)")
    e = base.eval
    judges = [item.partition("=")[0] for item in e.matchers]
    chosen = list(given.get("filter") or [])
    for name in chosen:
        need(name in judges, "filter", f"{name!r} is not among eval.matchers ({', '.join(judges) or 'none'}): the "
             "filter uses one of the sweep's judges, by name, so which judges it saw is on record")
    need("from" in given or not chosen, "filter", "filters a training arm's generator: give `from`")
    if "from" in given:
        need(given["from"] in arms, "from", f"{given['from']!r} is not one of the spec's arms ({', '.join(arms)})")
    else:
        need(Path(str(given["generator"])).expanduser().is_file(), "generator",
             f"{given['generator']!r}: not found (a LeakGuard checkpoint or release.pt)")
    fmr = float(given.get("fmr", 1e-3))
    need(0 < fmr < 1, "fmr", f"{fmr!r}: a false-match rate in (0, 1)")
    most = int(given.get("max_candidates", 20 * e.num_fakes))
    need(most >= e.num_fakes, "max_candidates", f"{most}: at least eval.num_fakes ({e.num_fakes})")
    trunc = float(given.get("trunc", 1.0))
    need(math.isfinite(trunc), "trunc", f"{trunc!r}: a finite truncation psi")
    first = e.first_seed + (0 if "from" in given else seed_index * e.num_fakes)
    return {"generator": given.get("generator"), "from": given.get("from"), "filter": chosen, "fmr": fmr,
            "max_candidates": most, "trunc": trunc, "first_seed": first}


def source_networks(settings: dict, sweep_dir: Path, seed: int, kimg: float) -> tuple[Path, int]:
    """(the checkpoint whose G_ema draws the release, the images it was trained on; 0 for a given file)."""
    if settings["generator"] is not None:
        return Path(settings["generator"]).expanduser(), 0
    from training.rundir import latest_intact_snapshot
    trial = sweep_dir / run_files.TRIALS / f"{settings['from']}_s{seed}"
    snap = latest_intact_snapshot(trial)
    nimg = round(kimg * 1000)
    if snap is None or int(snap.stem.split("-")[-1]) < nimg:
        raise FileNotFoundError(f"{trial}: no final snapshot (snapshot-{nimg:010d}.pt) yet; the release of arm "
                                f"{settings['from']!r} runs after that trial finishes: rerun the sweep")
    return snap, int(snap.stem.split("-")[-1])


def release_fakes(settings: dict, path: Path, evaluator, folder: Path, device) -> tuple[object, dict]:
    """(the released images, what was drawn and filtered) under the settings."""
    from training.seed_source import SeedSource
    e = evaluator.cfg.eval
    first = settings["first_seed"]
    if not settings["filter"]:
        source = SeedSource(path, range(first, first + e.num_fakes), settings["trunc"], device, e.batch)
        pixels = torch.cat([p for _, p in source.batches(0, e.batch)])                  # [N, 3, H, W]
        return (ImageTensor(pixels, name=f"G_ema of {path}", labels=[f"seed{s:04d}" for s in source.seeds]),
                {"drawn": len(pixels), "seeds": f"{first}-{first + e.num_fakes - 1}"})
    by_name = {m.name: m for m in evaluator.matchers}
    gates = [build_gate(by_name[n], evaluator.training, evaluator.store, settings["fmr"],
                        evaluator.calibrations.get(n)) for n in settings["filter"]]
    source = SeedSource(path, range(first, MAX_SEED + 1), settings["trunc"], device, e.batch)
    out = folder / FILTER_DIR
    run_filter(source, gates, [], FilterSettings(fmr=settings["fmr"], count=e.num_fakes,
                                                 max_candidates=settings["max_candidates"]),
               out, resume=(out / "candidates.jsonl").is_file())
    progress = read_progress(out, dedup=False)
    if progress.kept == 0:
        raise ValueError(f"{out}: the filter kept none of {progress.scored} candidates; raise max_candidates or the "
                         "release arm's fmr")
    return (ImageFiles(out / "kept"),
            {"drawn": progress.scored, "kept": progress.kept, "seeds": f"{first}-",
             "filter": {"matchers": settings["filter"], "fmr": settings["fmr"],
                        "thresholds": {g.matcher.name: g.threshold for g in gates}}})


def run_release(record: dict, folder: Path, sweep_dir: Path) -> dict:
    """The release arm's trial: draw (and filter) the release, score it, write eval.jsonl; returns the line."""
    from training.config import from_dict
    from training.data.loader import open_dataset
    from training.distributed import pick_device
    from training.evaluate import OUTSIDE_DP, Evaluator
    cfg = from_dict(record["config"], str(folder / run_files.TRIAL))
    s = record["release"]
    device = pick_device(cfg.train.device)
    evaluator = Evaluator.build(cfg, open_dataset(cfg.data), device)
    path, nimg = source_networks(s, Path(sweep_dir), record["seed"], record["kimg"])
    fakes, drawn = release_fakes(s, path, evaluator, folder, device)
    numbers, _ = evaluator.score(fakes, {"release": record["group"]})
    line = {"nimg": nimg, "kimg": nimg / 1000, "num_fakes": len(fakes),
            "release": {"arm": record["group"], "generator": str(path), "sha256": file_sha256(path),
                        "from_trial": None if s["from"] is None else f"{s['from']}_s{record['seed']}", **drawn},
            **numbers, "note": OUTSIDE_DP}
    write_text(folder / run_files.EVAL, strict_json(finite_or_null(line), indent=None) + "\n")
    return line


def release_trials(releases: Dict[str, Dict[str, Any]], arms: List[str], seed: int, seed_index: int, base: Config,
                   where: str) -> Iterator[tuple[str, dict]]:
    """(arm, settings) of each release arm for one seed."""
    for arm, given in releases.items():
        if not isinstance(given, dict):
            raise ConfigError(f"{where}: releases.{arm}: a mapping (generator or from, filter, fmr, ...)")
        yield arm, release_settings(arm, given, seed_index, base, arms, where)
