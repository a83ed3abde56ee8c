"""The sweep spec: a YAML file in configs/sweeps/, schema-checked like the training config, and the
trials it expands to.

    spec = load_spec("configs/sweeps/synthfaces32-privacy.yaml", ["eval.num_fakes=500"])
    trials = expand(spec)            # [Trial]: name, overrides, seed, the resolved training Config

A trial is the base preset <- the spec's `overrides` <- its `eval` <- the command line's overrides <-
its axis values <- train.seed and train.kimg. Axes are combined as a grid (every combination) or zipped (the
i-th value of every axis together), then crossed with the seeds. A trial's name comes from its axis
values alone (`unit-identity_noise_multiplier-0.8_s0`), so the same spec names the same trials on
every rerun. Instead of axes a spec may name its arms (`arms: {undefended: [], reg5: [leakage_reg.weight=5,
...]}`): each arm is one group of KEY=VALUE overrides, its trials <arm>_s<seed>, planned seed by seed, each
seed's release arms (`releases`, training.sweep.release: a given generator, or an arm's through the release
filter) after its training arms. Every trial's config is built and checked before anything runs: an unknown
key, an axis over a key the config does not have, an empty axis or a bad value is refused, naming the key.
"""
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from training.config import Config, ConfigError, load_config
from training.sweep.pe_arms import pe_groups
from training.sweep.release import release_trials

EXECUTORS = ("local", "submitit-local", "slurm")
COMBINE = ("grid", "zip")
RESERVED = {"train.seed": "seeds", "train.kimg": "kimg", "name": "the trial's name", "run_dir": "the sweep folder",
            "resume": "the sweep's own resume"}   # set by the sweep itself: an axis or override over them is refused
MAX_NAME = 80                                     # characters of a trial name before it is shortened with a hash
MAX_SEED = 2 ** 63                                # train.seed of a trial lies in [0, 2^63), as the config checks
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")   # a sweep's name: one folder, never '', '.', '..' or a path


@dataclass
class SlurmSpec:
    """Where trials run with executor=slurm (submitit); each trial is one job, torchrun-style over its GPUs."""
    partition: Optional[str] = None      # Slurm partition; null = the cluster's default
    account: Optional[str] = None        # Slurm account; null = none given
    gpus_per_trial: int = 1              # GPUs of one trial (one process per GPU, on one node)
    cpus_per_gpu: int = 8                # CPU cores per process (data loading)
    mem_gb: Optional[int] = None         # memory of the job, GB; null = the partition's default
    time_min: int = 4320                 # wall-clock limit per job, minutes; a timed-out trial requeues and resumes
    constraint: Optional[str] = None     # Slurm --constraint, e.g. a GPU type
    array_parallelism: int = 64          # trials running at once


@dataclass
class SweepSpec:
    name: str = MISSING                  # the sweep's name: its default folder is runs/sweeps/<name>
    base: str = MISSING                  # training preset, relative to the spec file or the working directory
    kimg: float = MISSING                # each trial's budget (train.kimg)
    overrides: List[str] = field(default_factory=list)      # KEY=VALUE applied to every trial
    eval: Dict[str, Any] = field(default_factory=dict)      # eval.* settings; every_kimg defaults to kimg
    combine: str = "grid"                # grid | zip: how the axes combine
    axes: Dict[str, List[Any]] = field(default_factory=dict)  # dotted config key -> values
    seeds: List[int] = field(default_factory=lambda: [0])    # train.seed of each combination
    executor: str = "local"              # local | submitit-local | slurm
    workers: int = 1                     # local: trials at once (each its own process)
    slurm: SlurmSpec = field(default_factory=SlurmSpec)
    command_line: List[str] = field(default_factory=list)    # KEY=VALUE given to `leakguard sweep run`: last
    pe: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # Private Evolution arms (training.sweep.pe_arms)
    arms: Dict[str, List[str]] = field(default_factory=dict)  # named arms: name -> KEY=VALUE (instead of axes)
    releases: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # release arms (training.sweep.release)
    arm_seeds: Dict[str, List[int]] = field(default_factory=dict)  # with arms: arm -> seeds beyond `seeds` (run last)


@dataclass
class Trial:
    name: str                            # the trial's folder under SWEEP/trials/
    group: str                           # the name without the seed: trials of a group differ only in seed
    overrides: Dict[str, Any]            # its axis values
    seed: int
    dotlist: List[str]                   # every override the trial's config was built from, in order
    config: Optional[Config]             # a training trial's config; None for a Private Evolution arm's
    pe: Optional[Dict[str, Any]] = None  # a Private Evolution arm's settings (training.pe.PESettings, plain data)
    release: Optional[Dict[str, Any]] = None  # a release arm's settings (training.sweep.release), with `config`


def load_spec(path: str | Path, extra: List[str] | None = None) -> SweepSpec:
    """The spec file (plus KEY=VALUE overrides from the command line, appended to `overrides`), checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep spec not found: {path}")
    try:
        data = OmegaConf.load(path)
    except Exception as e:  # yaml errors
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, DictConfig):
        raise ConfigError(f"{path}: a sweep spec is a YAML mapping of keys ({', '.join(_keys(SweepSpec)[:4])}, ...), "
                          f"not a {type(data).__name__.replace('Config', '').lower() or 'value'}")
    try:
        raw = OmegaConf.merge(OmegaConf.structured(SweepSpec), data)
        spec = OmegaConf.to_object(raw)
    except ConfigKeyError as e:
        raise ConfigError(f"{path}: unknown sweep key {e.full_key!r}; valid keys: "
                          f"{', '.join(_keys(SweepSpec) + ['slurm.' + k for k in _keys(SlurmSpec)])}") from None
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        raise ConfigError(f"{path}: " + (f"key {key!r}: " if key else "") + str(e).splitlines()[0]) from None
    if spec.command_line:
        raise ConfigError(f"{path}: command_line is set by `leakguard sweep run KEY=VALUE ...`; put the spec's own "
                          "settings under overrides")
    spec.command_line = list(extra or [])
    base = Path(spec.base)
    if not base.is_absolute() and not base.is_file() and (path.parent / base).is_file():
        spec.base = str(path.parent / base)
    check_spec(spec, str(path))
    return spec


def _keys(schema) -> List[str]:
    return [f.name for f in fields(schema)]


def distinct_seeds(seeds: List[int]) -> bool:
    """One or more distinct seeds, each a valid train.seed."""
    return len(seeds) > 0 and len(set(seeds)) == len(seeds) and all(0 <= s < MAX_SEED for s in seeds)


def check_spec(spec: SweepSpec, source: str) -> None:
    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{source}: {key}: {what}")
    need(NAME.fullmatch(spec.name) is not None, "name", f"{spec.name!r}: the sweep's folder under runs/sweeps/, one "
         "name of letters, digits, '.', '_', '+' and '-' that starts with a letter or digit")
    need(Path(spec.base).is_file(), "base", f"preset {spec.base!r} not found (relative to the spec file or the "
                                            "working directory)")
    need(0 < spec.kimg < math.inf, "kimg", f"{spec.kimg!r}: a positive finite number of kimg per trial")
    need(spec.combine in COMBINE, "combine", f"{spec.combine!r}: grid | zip")
    need(spec.executor in EXECUTORS, "executor", f"{spec.executor!r}: {' | '.join(EXECUTORS)}")
    need(spec.workers >= 1, "workers", f"{spec.workers!r}: at least 1 trial at once")
    need(distinct_seeds(spec.seeds), "seeds", f"{spec.seeds!r}: one or more distinct integers in [0, 2**63)")
    need(spec.slurm.gpus_per_trial >= 1 and spec.slurm.time_min >= 1, "slurm",
         "gpus_per_trial and time_min must be positive")
    for key, values in spec.axes.items():
        need(len(values) > 0, f"axes.{key}", "empty; give at least one value")
        need(spec.combine == "zip" or len({_canonical(v) for v in values}) == len(values), f"axes.{key}",
             f"repeats a value in {values}")
    need(not (spec.arms and spec.axes), "arms", "give either named arms or axes, not both (an arm is one "
         "combination of settings by name)")
    for arm, dotlist in spec.arms.items():
        need(NAME.fullmatch(arm) is not None, f"arms.{arm}", "an arm's name is its trials' folder prefix: letters, "
             "digits, '.', '_', '+' and '-'")
        need(arm not in spec.pe and f"pe-{arm}" not in spec.pe, f"arms.{arm}", "also a Private Evolution arm's name")
        for item in dotlist:
            need(isinstance(item, str) and "=" in item, f"arms.{arm}", f"{item!r}: give KEY=VALUE overrides")
    for arm, extra in spec.arm_seeds.items():
        need(arm in spec.arms, f"arm_seeds.{arm}", f"not a training arm of `arms` ({', '.join(spec.arms) or 'none'})")
        need(distinct_seeds(extra), f"arm_seeds.{arm}", f"{extra!r}: one or more distinct integers in [0, 2**63)")
        need(not set(extra) & set(spec.seeds), f"arm_seeds.{arm}", f"{sorted(set(extra) & set(spec.seeds))} already "
             "in `seeds`: give only the arm's seeds beyond them")
    need(not spec.releases or spec.arms, "releases", "release arms need named arms (`arms`): `from` names one")
    for arm in spec.releases:
        need(NAME.fullmatch(arm) is not None and arm not in spec.arms, f"releases.{arm}",
             "a release arm's name: letters, digits, '.', '_', '+' and '-', and not the name of a training arm")
    arm_keys = [o.partition("=")[0] for dotlist in spec.arms.values() for o in dotlist]
    for key in list(spec.axes) + arm_keys + [o.partition("=")[0] for o in spec.overrides + spec.command_line]:
        need(key not in RESERVED, key, f"set by the sweep; use {RESERVED.get(key)} instead")
    for key in spec.eval:
        need("." not in key, f"eval.{key}", "give eval settings one level deep (e.g. every_kimg: 10)")
    for arm, given in spec.pe.items():
        need(NAME.fullmatch(arm) is not None, f"pe.{arm}", "an arm's name is part of its folder's: letters, digits, "
             "'.', '_', '+' and '-'")
        need(isinstance(given, dict), f"pe.{arm}", "a mapping of `leakguard pe` settings (generator, data, embedding, "
             "epsilon, ...)")
    if spec.combine == "zip":
        lengths = {k: len(v) for k, v in spec.axes.items()}
        need(len(set(lengths.values())) <= 1, "axes", f"combine=zip needs axes of one length, got {lengths}")


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def _as_override(key: str, value) -> str:
    """KEY=VALUE whose VALUE parses back (as YAML) to `value`: JSON is YAML."""
    return f"{key}={_canonical(value)}"


def combinations(spec: SweepSpec) -> List[Dict[str, Any]]:
    """The axis values of each combination, in the spec's order."""
    keys = list(spec.axes)
    if not keys:
        return [{}]
    rows = zip(*spec.axes.values()) if spec.combine == "zip" else itertools.product(*spec.axes.values())
    return [dict(zip(keys, row)) for row in rows]


def labels(keys: List[str]) -> Dict[str, str]:
    """Each key's shortest dotted suffix that no other key ends with: privacy.noise_multiplier -> noise_multiplier."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            label = ".".join(parts[-n:])
            if not any(other != key and (other == label or other.endswith("." + label)) for other in keys):
                break
        out[key] = label
    return out


def _word(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return format(value, "g")
    if isinstance(value, (list, tuple)):
        return "+".join(_word(v) for v in value)
    return str(value)


def group_name(values: Dict[str, Any], short: Dict[str, str]) -> str:
    """A folder-safe name from the axis values; long ones keep a prefix and gain a hash of the values."""
    if not values:
        return "base"
    text = "_".join(f"{short[k]}-{_word(v)}" for k, v in values.items())
    text = re.sub(r"[^A-Za-z0-9._+-]+", "-", text)
    if len(text) > MAX_NAME:
        text = text[:MAX_NAME - 9] + "~" + hashlib.sha1(_canonical(values).encode()).hexdigest()[:8]
    return text


def expand(spec: SweepSpec) -> List[Trial]:
    """Every trial of the spec, each config built and checked (module doc)."""
    evals = {"every_kimg": spec.kimg, **spec.eval}
    common = list(spec.overrides) + [_as_override(f"eval.{k}", v) for k, v in evals.items()] + spec.command_line
    trials = _arm_trials(spec, common) if spec.arms else _axis_trials(spec, common)
    if spec.pe:
        base = load_config(spec.base, common)
        groups = {t.group for t in trials}
        for group, name, seed, settings in pe_groups(spec.pe, spec.seeds, base, f"sweep {spec.name!r}"):
            if group in groups:
                raise ConfigError(f"pe: arm {group!r} has the name of a training group; rename the arm")
            trials.append(Trial(name, group, {"pe": group.removeprefix("pe-")}, seed, [], None, settings))
    return trials


def _axis_trials(spec: SweepSpec, common: List[str]) -> List[Trial]:
    """The axes' combinations, each crossed with the seeds."""
    short = labels(list(spec.axes))
    trials, seen = [], {}
    for values in combinations(spec):
        group = group_name(values, short)
        if group in seen:
            raise ConfigError(f"axes: {seen[group]} and {values} both name their trials {group!r}; give the values "
                              "distinct spellings")
        seen[group] = values
        for seed in spec.seeds:
            dotlist = common + [_as_override(k, v) for k, v in values.items()] + [f"train.seed={seed}",
                                                                               f"train.kimg={spec.kimg}"]
            try:
                cfg = load_config(spec.base, dotlist)
            except ConfigError as e:
                raise ConfigError(f"sweep {spec.name!r}, trial {group}_s{seed}: {e}") from None
            trials.append(Trial(f"{group}_s{seed}", group, values, seed, dotlist, cfg))
    return trials


def _arm_trials(spec: SweepSpec, common: List[str]) -> List[Trial]:
    """The named arms' trials, seed by seed (every arm of seed 0, then of seed 1, ...), so a sweep stopped
    part way has whole seeds to compare, then each arm's `arm_seeds`; an arm's overrides come after the spec's and
    the command line's."""
    def arm_trial(arm: str, seed: int) -> Trial:
        full = common + list(spec.arms[arm]) + [f"train.seed={seed}", f"train.kimg={spec.kimg}"]
        try:
            cfg = load_config(spec.base, full)
        except ConfigError as e:
            raise ConfigError(f"sweep {spec.name!r}, arm {arm} (trial {arm}_s{seed}): {e}") from None
        return Trial(f"{arm}_s{seed}", arm, {"arm": arm}, seed, full, cfg)

    trials = []
    for seed in spec.seeds:
        trials += [arm_trial(arm, seed) for arm in spec.arms]
        if spec.releases:
            full = common + [f"train.seed={seed}", f"train.kimg={spec.kimg}"]
            base = load_config(spec.base, full)
            for arm, settings in release_trials(spec.releases, list(spec.arms), seed, spec.seeds.index(seed), base,
                                                f"sweep {spec.name!r}"):
                trials.append(Trial(f"{arm}_s{seed}", arm, {"release": arm}, seed, full, base, release=settings))
    return trials + [arm_trial(arm, seed) for arm, extra in spec.arm_seeds.items() for seed in extra]
