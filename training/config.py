"""The training config: a typed schema, YAML presets merged over it, dot-list overrides on top.

    cfg = load_config("configs/synthfaces32.yaml", ["train.kimg=200", "data.path=faces.zip"])

Every field says its unit. Unknown keys and ill-typed values are errors that name the key and list
what is accepted; the resolved config is saved in every run folder and in every checkpoint.
"""
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, List, Optional

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from leakguard.matchers.file_spec import MODEL_SUFFIXES, SPEC_SUFFIX, SpecError, has_spec, spec_path
from leakguard.matchers.registry import DIFFERENTIABLE, is_differentiable
from training.dp.refusals import check_privacy
from training.errors import ConfigError, require

AUGMENT_MODES = ("ada", "fixed", "noaug")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class SynthFacesConfig:
    """The embedded procedural dataset, used when data.path is null."""
    num_identities: int = 100            # people
    images_per_identity: int = 20        # images per person
    identity_offset: int = 0             # first identity id (disjoint sets for matcher training)
    overrep_identity: Optional[int] = None  # identity id given overrep_images images, or null
    overrep_images: int = 0              # images of the over-represented identity
    seed: int = 0                        # dataset seed (identities and nuisance)
    population: str = "all"              # all, public or private: shifted attributes (training/synthfaces/populations.py)


@dataclass
class DataConfig:
    path: Optional[str] = None           # image folder or dataset zip; null = SynthFaces
    resolution: int = 32                 # px, square; must match the data
    use_labels: bool = False             # condition G and D on dataset.json labels
    xflip: bool = False                  # add mirrored copies (doubles the dataset)
    skip_bad: bool = False               # skip corrupt images (counted) instead of stopping
    max_size: Optional[int] = None       # images; keep only the first N
    workers: int = 2                     # DataLoader worker processes; 0 loads in the main process
    synthfaces: SynthFacesConfig = field(default_factory=SynthFacesConfig)


@dataclass
class ModelConfig:
    z_dim: int = 512                     # latent size
    w_dim: int = 512                     # intermediate latent size
    map_layers: int = 8                  # mapping network depth
    map_lr_mult: float = 0.01            # mapping learning-rate multiplier
    channel_base: int = 32768            # channels at resolution r = min(channel_base / r, channel_max)
    channel_max: int = 512               # channels
    g_architecture: str = "skip"         # orig | skip | resnet
    d_architecture: str = "resnet"       # orig | skip | resnet
    num_fp16_res: int = 0                # highest resolutions run in fp16 (CUDA only)
    conv_clamp: Optional[float] = None   # clamp conv outputs (256 with fp16), null = off
    mbstd_group: int = 4                 # minibatch-stddev group size (images)
    mbstd_channels: int = 1              # minibatch-stddev features; 0 = off


@dataclass
class LossConfig:
    r1_gamma: float = 10.0               # R1 weight gamma (penalty gamma/2 * |grad D(x)|^2)
    r1_interval: int = 16                # rounds between lazy R1 steps (1 = every round)
    pl_weight: float = 2.0               # path-length weight; 0 = off
    pl_decay: float = 0.01               # path-length mean moving-average rate
    pl_batch_shrink: int = 2             # path-length batch = batch_gpu / this
    pl_interval: int = 4                 # rounds between lazy path-length steps (1 = every round)
    style_mixing: float = 0.9            # probability of mixing two latents per image


@dataclass
class OptimConfig:
    g_lr: float = 0.002                  # Adam learning rate, G
    d_lr: float = 0.002                  # Adam learning rate, D
    betas: List[float] = field(default_factory=lambda: [0.0, 0.99])  # Adam betas (before the lazy-reg adjustment)
    eps: float = 1e-8                    # Adam epsilon


@dataclass
class AugmentConfig:
    mode: str = "ada"                    # ada (adaptive p) | fixed (p stays) | noaug
    pipe: str = "bgc"                    # augmentation preset (training.augment.AUGMENT_PRESETS)
    p: float = 0.0                       # initial (ada) or constant (fixed) probability
    target: float = 0.6                  # ada: target of r_t = E[sign(D(real))]
    interval: int = 4                    # ada: D steps between p updates
    speed_kimg: float = 500.0            # ada: kimg for p to move by 1 at full speed


@dataclass
class TrainConfig:
    kimg: float = 25000.0                # length of training, thousands of real images shown to D
    batch: int = 32                      # images per optimizer step over all GPUs
    batch_gpu: int = 0                   # images per forward pass per GPU; 0 = batch / GPUs (no accumulation)
    ema_kimg: float = 10.0               # G_ema half-life, kimg
    ema_rampup: Optional[float] = None   # ema half-life <= this * images seen; null = off
    seed: int = 0                        # seeds weights, latents, noise, augmentation, data order
    tick_kimg: float = 4.0               # kimg between progress logs and stats
    snapshot_kimg: float = 200.0         # kimg between checkpoints
    image_kimg: float = 200.0            # kimg between fake-image grids
    keep_snapshots: int = 3              # newest snapshots kept; 0 = keep all
    grid_images: int = 32                # images in the fixed-seed grid
    device: str = "auto"                 # auto | cpu | cuda
    init: Optional[str] = None           # pretrained networks to start from (a LeakGuard checkpoint, snapshot or
                                         # release.pt, or an official pkl): G, D, G_ema; fresh optimizers, 0 images
    freeze_d: int = 0                    # D blocks frozen from the input side (StyleGAN2-ADA --freezed; Mo et al. 2020)
    nan_guard: bool = True               # skip an optimizer step whose gradients are not finite
    progress: bool = True                # tqdm progress bar (rank 0)


@dataclass
class PrivacyConfig:
    """DP-SGD on D (training.dp): what one unit of the (epsilon, delta) guarantee is, and its noise."""
    unit: str = "none"                   # none | image (one training image) | identity (one person, all images)
    noise_multiplier: Optional[float] = None  # sigma (noise std / C); give this or target_epsilon
    target_epsilon: Optional[float] = None    # sigma solved for train.kimg; training stops before exceeding it
    max_grad_norm: float = 1.0           # C: each unit's D gradient is clipped to this L2 norm
    delta: Optional[float] = None        # null = min(1e-5, 1 / (10 * units))
    accountant: str = "rdp"              # rdp | prv (Opacus's accountants)
    expected_batch: Optional[int] = None # units per D step on average (Poisson rate q = this / units); null = train.batch
    max_images_per_identity: int = 4     # k: unit=identity uses at most k of a sampled person's images per step
    d_steps_per_g: int = 1               # private D steps per G step (Bie et al. 2023: more under DP)
    secret_seed: Optional[int] = None    # null = drawn from the OS (secret); a known seed voids the guarantee


@dataclass
class EvalConfig:
    """Evaluation during training (training.evaluate): G_ema's fixed fakes audited with the matcher suite
    and scored for fidelity against the training set. Reads training images: outside any DP guarantee."""
    every_kimg: Optional[float] = None   # evaluate every this many kimg and at the end; null = off
    num_fakes: int = 1000                # generated images per evaluation
    first_seed: int = 0                  # their seeds: first_seed .. first_seed + num_fakes - 1, fixed across resumes
    matchers: List[str] = field(default_factory=list)   # NAME[=WEIGHTS], as `leakguard audit --matcher`
    fmrs: List[float] = field(default_factory=lambda: [1e-2, 1e-3, 1e-4])  # false-match rates of the leak rates
    members: Optional[str] = None        # held-out images of training people (with identities), for membership
    nonmembers: Optional[str] = None     # images of people never in training (with identities)
    fidelity: List[str] = field(default_factory=list)   # NAME[=PATH] feature extractors (inception, a matcher, ...)
    bootstrap: int = 200                 # resamples for the audit's intervals
    kid_subsets: int = 100               # KID subsets (of min(1000, num_fakes, training images))
    cache: Optional[str] = None          # embedding cache folder; null = ~/.cache/leakguard/embeddings
    batch: int = 64                      # images per matcher / extractor forward pass


@dataclass
class LeakageRegConfig:
    """The identity-leakage regularizer (training.leakage, leak_step): a hinge penalty on G's fakes whose best
    cosine to a training identity reaches the matcher's threshold at `fmr` (leakguard.regularizer)."""
    weight: float = 0.0                  # penalty weight; 0 = off
    matchers: List[str] = field(default_factory=list)  # NAME=WEIGHTS of differentiable matchers; penalties add up
    fmr: float = 1e-3                    # false-match rate of each matcher's threshold tau
    threshold_source: str = "calibration"  # calibration (WEIGHTS.calibration.json) | training (the training set's pairs)
    margin: float = 0.05                 # cosine below tau where the hinge starts
    bank: str = "images"                 # images (one row per training image: the audit's max over a person's
                                         # images) | centroid (one row per person; the only bank under DP)
    interval: int = 4                    # rounds between lazy leakage steps (Adam rescaled as for path length)
    start_kimg: float = 0.0              # kimg before the first leakage step
    batch: int = 0                       # fakes per pass; 0 = train.batch_gpu
    bank_noise: Optional[float] = None   # sigma of the private bank under privacy.unit (noise std / sensitivity 1)
    cache: Optional[str] = None          # embedding cache folder; null = ~/.cache/leakguard/embeddings


@dataclass
class Config:
    name: str = "run"                    # run folder prefix: runs/<name>-<n>
    run_dir: str = "runs"                # where run folders go
    resume: Optional[str] = None         # checkpoint path, or "auto" (latest run named `name`)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    leakage_reg: LeakageRegConfig = field(default_factory=LeakageRegConfig)


def _section_schema(section: str):
    """The dataclass behind a dotted section name ('' is the root), or None if there is none."""
    schema = Config
    for part in filter(None, section.split(".")):
        default = getattr(schema(), part, None)
        if not is_dataclass(default):
            return None
        schema = type(default)
    return schema


def _valid_keys(schema, prefix: str) -> list[str]:
    """Keys of one section; nested sections are listed as `name.*`."""
    return [f"{prefix}{f.name}.*" if is_dataclass(getattr(schema(), f.name)) else prefix + f.name
            for f in fields(schema)]


def _explain(e: OmegaConfBaseException, source: str) -> ConfigError:
    key = getattr(e, "full_key", None) or ""
    if isinstance(e, ConfigKeyError) or "not in" in str(e):
        section = key.rsplit(".", 1)[0] if "." in key else ""
        schema = _section_schema(section)
        valid = _valid_keys(schema, f"{section}." if section else "") if schema else []
        return ConfigError(f"{source}: unknown config key {key!r}; valid keys here: {', '.join(valid)}")
    if isinstance(e, ValidationError):
        msg = str(e).splitlines()[0]
        return ConfigError(f"{source}: bad value for {key!r}: {msg}")
    return ConfigError(f"{source}: {str(e).splitlines()[0]}")


def _merge(base: DictConfig, other, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except OmegaConfBaseException as e:
        raise _explain(e, source) from None


def load_config(preset: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Schema <- preset YAML <- dot-list overrides, checked; returns a typed Config."""
    cfg = OmegaConf.structured(Config)
    if preset is not None:
        path = Path(preset)
        if path.is_dir():
            raise IsADirectoryError(f"--config {path} is a folder; name a YAML preset (e.g. configs/synthfaces32.yaml)")
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            data = OmegaConf.load(path)
        except Exception as e:  # yaml.YAMLError and friends
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        cfg = _merge(cfg, data, str(path))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. train.kimg=200)")
        try:
            dot = OmegaConf.from_dotlist([item])
        except OmegaConfBaseException as e:
            raise ConfigError(f"override {item!r}: {str(e).splitlines()[0]}") from None
        cfg = _merge(cfg, dot, f"override {item!r}")
    config = OmegaConf.to_object(cfg)
    check(config)
    return config


def from_dict(data: dict, source: str) -> Config:
    """A Config from a plain dict (as saved in a checkpoint), checked like a preset."""
    cfg = _merge(OmegaConf.structured(Config), OmegaConf.create(data), source)
    return OmegaConf.to_object(cfg)


def to_dict(cfg: Config) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


# Keys that may differ between a snapshot's config and the resumed run: they change how long or
# how verbosely training runs, or where data lives, never what it computes.
RESUMABLE_CHANGES = ("name", "run_dir", "resume", "data.path", "data.workers", "train.kimg", "train.batch_gpu",
                     "train.tick_kimg", "train.snapshot_kimg", "train.image_kimg", "train.keep_snapshots",
                     "train.grid_images", "train.device", "train.progress")  # and every eval.* key


def flatten(d: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}: a config as dotted keys."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def changed_keys(a: dict, b: dict, ignore=()) -> list[str]:
    """The dotted keys whose values differ between two configs as dicts (sorted), but those in `ignore`."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in set(fa) | set(fb) if k not in ignore and fa.get(k) != fb.get(k))


def config_differences(saved: dict, current: dict) -> list[str]:
    """'key: saved -> current' for every key that may not change on resume."""
    a, b = flatten(saved), flatten(current)
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in changed_keys(saved, current, RESUMABLE_CHANGES)
            if not k.startswith("eval.")]


MAX_KIMG = 1e6  # kimg: a billion images, 20x the longest published StyleGAN2 run
# Upper bounds a machine can meet, each far above any published setting: a typo of a few orders of
# magnitude is refused at the start instead of exhausting memory hours later.
LIMITS = {"data.resolution": 4096, "data.workers": 256, "model.z_dim": 8192, "model.w_dim": 8192,
          "model.map_layers": 64, "model.channel_max": 8192, "model.mbstd_group": 1024, "model.mbstd_channels": 64,
          "train.batch": 1 << 16, "train.batch_gpu": 1 << 16, "train.grid_images": 1024,
          "train.keep_snapshots": 100000, "loss.r1_interval": 1 << 20, "loss.pl_interval": 1 << 20,
          "loss.pl_batch_shrink": 1 << 16, "privacy.max_images_per_identity": 1 << 16,
          "privacy.expected_batch": 1 << 24, "eval.bootstrap": 100000, "eval.kid_subsets": 100000,
          "eval.batch": 1 << 14, "leakage_reg.batch": 1 << 14, "leakage_reg.interval": 1 << 20}
EVAL_PIXELS = 8 << 30  # eval.num_fakes x 3 x resolution^2 bytes: the rendered fakes are held in memory


def check_limits(cfg: Config) -> None:
    for key, most in LIMITS.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value is not None:
            require(value <= most, key, value, f"at most {most} (a bound far above any published setting)")


def check(cfg: Config) -> None:
    """Value checks the type system cannot express."""
    check_limits(cfg)
    r = cfg.data.resolution
    require(r >= 8 and r & (r - 1) == 0, "data.resolution", r, "a power of two >= 8")
    for key in ("g_architecture", "d_architecture"):
        require(getattr(cfg.model, key) in ("orig", "skip", "resnet"), f"model.{key}",
                getattr(cfg.model, key), "orig, skip or resnet")
    require(cfg.augment.mode in AUGMENT_MODES, "augment.mode", cfg.augment.mode, " | ".join(AUGMENT_MODES))
    require(0 <= cfg.augment.p <= 1, "augment.p", cfg.augment.p, "a probability in [0, 1]")
    require(cfg.train.device in DEVICES, "train.device", cfg.train.device, " | ".join(DEVICES))
    require(cfg.train.batch >= 1, "train.batch", cfg.train.batch, "a positive number of images")
    require(cfg.train.batch_gpu >= 0, "train.batch_gpu", cfg.train.batch_gpu, "0 (auto) or a positive number")
    require(len(cfg.optim.betas) == 2 and all(0 <= b < 1 for b in cfg.optim.betas), "optim.betas",
            cfg.optim.betas, "two numbers in [0, 1)")
    for key in ("r1_interval", "pl_interval"):
        require(getattr(cfg.loss, key) >= 1, f"loss.{key}", getattr(cfg.loss, key), "a positive number of rounds")
    require(cfg.loss.pl_batch_shrink >= 1, "loss.pl_batch_shrink", cfg.loss.pl_batch_shrink, "an integer >= 1")
    require(0 <= cfg.loss.style_mixing <= 1, "loss.style_mixing", cfg.loss.style_mixing, "a probability in [0, 1]")
    require(0 < cfg.train.kimg <= MAX_KIMG, "train.kimg", cfg.train.kimg,
            f"a positive number of kimg up to {MAX_KIMG:g} (StyleGAN2's longest runs are 25000-50000)")
    require(0 <= cfg.train.seed < 2 ** 63, "train.seed", cfg.train.seed, "a seed in [0, 2^63)")
    for key in ("tick_kimg", "snapshot_kimg", "image_kimg"):
        require(getattr(cfg.train, key) > 0, f"train.{key}", getattr(cfg.train, key), "a positive number of kimg")
    require(cfg.train.keep_snapshots >= 0, "train.keep_snapshots", cfg.train.keep_snapshots, "0 (all) or a count")
    blocks = max(int(r).bit_length() - 3, 0)  # D's blocks at 2^k px, k = log2(res) .. 3; the epilogue (4 px) stays
    require(0 <= cfg.train.freeze_d <= blocks, "train.freeze_d", cfg.train.freeze_d,
            f"0 to {blocks}, the number of D blocks at {r} px before the 4 px epilogue")
    require(cfg.data.workers >= 0, "data.workers", cfg.data.workers, "0 (the main process) or a count")
    check_privacy(cfg)
    check_eval(cfg)
    check_leakage_reg(cfg)


def check_leakage_reg(cfg: Config) -> None:
    """The regularizer's values; its files are opened when training starts (training.leakage)."""
    r = cfg.leakage_reg
    require(r.weight >= 0 and r.weight != float("inf"), "leakage_reg.weight", r.weight,
            "0 (off) or a positive finite weight")
    if r.weight == 0:
        return
    require(len(r.matchers) > 0, "leakage_reg.matchers", r.matchers,
            f"at least one NAME=WEIGHTS with NAME among {', '.join(DIFFERENTIABLE)}, or NAME=MODEL.pt for a "
            f"TorchScript model whose MODEL.pt{SPEC_SUFFIX} says differentiable: true")
    for item in r.matchers:
        check_leakage_matcher(item)
    require(0 < r.fmr < 1, "leakage_reg.fmr", r.fmr, "a false-match rate in (0, 1)")
    require(r.threshold_source in ("calibration", "training"), "leakage_reg.threshold_source", r.threshold_source,
            "calibration | training")
    require(0 <= r.margin <= 2, "leakage_reg.margin", r.margin, "a cosine margin in [0, 2]")
    require(r.bank in ("centroid", "images"), "leakage_reg.bank", r.bank, "centroid | images")
    require(r.interval >= 1, "leakage_reg.interval", r.interval, "a positive number of rounds")
    require(r.start_kimg >= 0, "leakage_reg.start_kimg", r.start_kimg, "kimg >= 0")
    require(r.batch >= 0, "leakage_reg.batch", r.batch, "0 (= train.batch_gpu) or a positive number of fakes")
    if cfg.privacy.unit == "none":
        return
    if r.bank_noise is None or not 0 < r.bank_noise < float("inf"):
        raise ConfigError(f"leakage_reg.bank_noise={r.bank_noise!r} with privacy.unit={cfg.privacy.unit!r}: the "
                          "identity bank is made from the private training images, so under DP it must be released "
                          "privately; set leakage_reg.bank_noise to the noise multiplier of the private bank (each "
                          "person's centroid, norm <= 1, plus N(0, sigma^2) once; counted in the privacy ledger), or "
                          "leakage_reg.weight=0")
    require(r.bank == "centroid", "leakage_reg.bank", r.bank,
            "centroid under privacy.unit (the private bank releases one noisy row per person): set "
            "leakage_reg.bank=centroid")
    require(r.threshold_source == "calibration", "leakage_reg.threshold_source", r.threshold_source,
            "calibration under privacy.unit: thresholds from the training set's own pairs read private data")


def check_leakage_matcher(item: str) -> None:
    """One leakage_reg.matchers item: NAME=WEIGHTS of a differentiable built-in, or any NAME for a TorchScript
    model file whose sidecar spec says differentiable: true (the regularizer needs gradients to the pixels)."""
    name, _, weights = item.partition("=")
    if has_spec(weights):
        try:
            differentiable = is_differentiable(name, weights)
        except SpecError as e:       # e.g. differentiable: true on an ONNX model
            raise ConfigError(f"leakage_reg.matchers={item!r}: {e}") from None
        suffix = Path(weights).suffix
        why = (f"{spec_path(weights)} says differentiable: false" if suffix == ".pt" else
               f"{weights} is a {suffix} model, which keeps no gradients to the pixels")
        require(differentiable, "leakage_reg.matchers", item, "a differentiable matcher; only TorchScript specs "
                f"with differentiable: true can be used by the regularizer ({why})")
        return
    missing = (f" ({weights}: no such model file with a spec)"
               if Path(weights).suffix in MODEL_SUFFIXES and name not in DIFFERENTIABLE else "")
    require(name in DIFFERENTIABLE, "leakage_reg.matchers", item,
            f"a differentiable matcher: {', '.join(DIFFERENTIABLE)} (as NAME=WEIGHTS), or NAME=MODEL.pt for a "
            f"TorchScript model whose MODEL.pt{SPEC_SUFFIX} says differentiable: true{missing}")
    require(bool(weights), "leakage_reg.matchers", item, f"{name}=WEIGHTS: the regularizer needs trained weights")


def check_eval(cfg: Config) -> None:
    """The eval section's values; its files are checked when training starts (training.evaluate)."""
    e = cfg.eval
    if e.every_kimg is None:
        return
    require(e.every_kimg > 0, "eval.every_kimg", e.every_kimg, "null (off) or a positive number of kimg")
    most = EVAL_PIXELS // (3 * cfg.data.resolution ** 2)
    require(2 <= e.num_fakes <= most, "eval.num_fakes", e.num_fakes,
            f"2 to {most} generated images at {cfg.data.resolution} px (they are held in memory: 8 GiB of pixels)")
    require(e.first_seed >= 0, "eval.first_seed", e.first_seed, "a seed >= 0")
    require(bool(e.matchers or e.fidelity), "eval.matchers", e.matchers,
            "at least one matcher (eval.matchers) or feature extractor (eval.fidelity) when eval.every_kimg is set")
    require(all(0 < f < 1 for f in e.fmrs) and len(e.fmrs) > 0, "eval.fmrs", e.fmrs, "false-match rates in (0, 1)")
    require((e.members is None) == (e.nonmembers is None), "eval.members", e.members,
            "both eval.members and eval.nonmembers, or neither")
    for key in ("bootstrap", "kid_subsets", "batch"):
        require(getattr(e, key) >= 1, f"eval.{key}", getattr(e, key), "a positive number")


__all__ = ["Config", "PrivacyConfig", "ConfigError", "load_config", "from_dict", "to_dict", "to_yaml", "check", "MISSING"]
