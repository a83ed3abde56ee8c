"""Private Evolution arms of a sweep: the spec's `pe:` section, each arm a `leakguard pe` run per seed, judged
by the same evaluation as the training trials so their rows share columns.

    pe:
      pe_eps8: {generator: public.pt, data: private.zip, embedding: synth=synth.pt, epsilon: 8,
                population: 250, iterations: 5}

An arm's keys are training.pe.PESettings fields (embedding as NAME[=WEIGHTS]); the sweep sets `seed` (the
public seed: latents, variations, resampling) from `seeds`, and the evaluation from the spec's `eval` over the
base preset: eval.matchers, fidelity, fmrs, members, nonmembers and cache; `count` defaults to eval.num_fakes, so
a PE row scores as many images as a training trial's. Its trial is pe-<arm>_s<seed>, its group pe-<arm>.
"""
from dataclasses import fields
from typing import Any, Dict, List

from training.config import Config, ConfigError
from training.pe.settings import PESettings, check_settings, plain

SET_BY_SWEEP = {"seed": "seeds", "eval_matchers": "eval.matchers", "eval_features": "eval.fidelity",
                "eval_fmrs": "eval.fmrs", "eval_members": "eval.members", "eval_nonmembers": "eval.nonmembers",
                "cache": "eval.cache"}


def pe_settings(arm: str, given: Dict[str, Any], seed: int, base: Config, where: str) -> dict:
    """One arm's PESettings for one seed as plain data, checked; errors name the arm and the key."""
    valid = [f.name for f in fields(PESettings) if f.name not in SET_BY_SWEEP and f.name != "embedding_path"]
    for key in given:
        if key in SET_BY_SWEEP:
            raise ConfigError(f"{where}: pe.{arm}.{key}: set by the sweep; use {SET_BY_SWEEP[key]} instead")
        if key not in valid:
            raise ConfigError(f"{where}: pe.{arm}.{key}: unknown key; valid keys: {', '.join(valid)}")
    for key in ("generator", "data", "embedding"):
        if key not in given:
            raise ConfigError(f"{where}: pe.{arm}: needs {key}")
    name, _, path = str(given["embedding"]).partition("=")
    e = base.eval
    values = {**given, "embedding": name, "embedding_path": path or None, "seed": seed,
              "count": given.get("count", e.num_fakes), "eval_matchers": list(e.matchers),
              "eval_features": list(e.fidelity), "eval_fmrs": tuple(e.fmrs), "eval_members": e.members,
              "eval_nonmembers": e.nonmembers, "cache": e.cache, "batch": given.get("batch", e.batch)}
    if "variation" in values:
        values["variation"] = tuple(values["variation"])
    settings = PESettings(**values)
    try:
        check_settings(settings)
    except (ValueError, OSError) as err:
        raise ConfigError(f"{where}: pe.{arm}: {err}") from None
    return plain(settings)


def pe_groups(arms: Dict[str, Dict[str, Any]], seeds: List[int], base: Config, where: str) -> List[tuple]:
    """(group, trial name, seed, settings) of every PE arm and seed."""
    return [(f"pe-{arm}", f"pe-{arm}_s{seed}", seed, pe_settings(arm, dict(given), seed, base, where))
            for arm, given in arms.items() for seed in seeds]


def settings_of(record: dict) -> PESettings:
    """The PESettings a trial.json's "pe" holds (lists back to the tuples they were)."""
    values = dict(record)
    for key in ("variation", "eval_fmrs"):
        values[key] = tuple(values[key])
    return PESettings(**values)
