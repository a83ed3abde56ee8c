"""TrainState: everything a training step reads or changes, in one object, and how it is built
from a Config. The checkpoint (training.snapshot) is exactly this object's state."""
import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from training.augment import AugmentPipe, make_augment_pipe
from training.augment.ada import AdaController
from training.config import Config
from training.distributed import Dist, broadcast_module
from training.dp.setup import PrivacyState, build_privacy, key_from_words, key_words
from training.leakage import Leakage
from training.networks import Discriminator, Generator
from training.report import Reporter


@dataclass
class TrainState:
    cfg: Config
    G: Generator
    D: Discriminator
    G_ema: Generator
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    augment: AugmentPipe | None          # None with augment.mode=noaug
    ada: AdaController | None            # None unless augment.mode=ada
    pl_mean: torch.Tensor                # running mean of path lengths, scalar
    labels: torch.Tensor                 # [N, c_dim] labels sampled for fakes: the dataset's, or under DP a public prior
    dist: Dist
    reporter: Reporter
    batch_gpu: int                       # images per forward pass
    nimg: int = 0                        # real images shown to D so far, all ranks
    round: int = 0                       # rounds done; indexes data and random streams
    skipped_steps: int = 0               # optimizer steps dropped for non-finite gradients
    dataset_info: dict = field(default_factory=dict)  # data.loader.describe(dataset): resume refuses other data
    privacy: PrivacyState | None = None  # under privacy.unit: DP-SGD on D (training.dp) and its ledger
    leakage: Leakage | None = None       # under leakage_reg.weight > 0: the regularizer (built by the loop)
    d_frozen: frozenset = frozenset()    # names of D's parameters that train.freeze_d keeps fixed
    dataset_fingerprint: str | None = None  # the training data's content (data.training_set.fingerprint)
    init: dict | None = None             # train.init's path and SHA-256 (training.init), recorded in checkpoints
    image_set_record: dict | None = None  # data.path is a DP image set: its privacy record (training.dp.image_set)

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def accum(self) -> int:
        """Forward/backward passes per rank per optimizer step (gradient accumulation)."""
        return self.cfg.train.batch // (self.batch_gpu * self.dist.world)


def lazy_ratio(*intervals: int) -> float:
    """Lazy regularization (Karras et al. 2020, appendix B): with a regularizer every k steps, Adam's
    lr and betas are rescaled by k / (k + 1) so the main and regularization steps add up to one; with
    several (path length and the leakage penalty on G), by 1 / (1 + sum of 1/k), the same count of
    optimizer steps per round. An interval of 0 is a regularizer that is off."""
    on = [k for k in intervals if k > 0]
    if len(on) == 1:
        return on[0] / (on[0] + 1)
    return 1.0 / (1.0 + sum(1.0 / k for k in on))


def make_optimizer(module: nn.Module, lr: float, betas, eps: float, *reg_intervals: int) -> torch.optim.Adam:
    ratio = lazy_ratio(*reg_intervals)
    return torch.optim.Adam(module.parameters(), lr=lr * ratio, betas=tuple(b ** ratio for b in betas), eps=eps)


def build_networks(cfg: Config, resolution: int, channels: int, c_dim: int) -> tuple[Generator, Discriminator]:
    m = cfg.model
    G = Generator(z_dim=m.z_dim, c_dim=c_dim, w_dim=m.w_dim, img_resolution=resolution, img_channels=channels,
                  mapping_kwargs=dict(num_layers=m.map_layers, lr_multiplier=m.map_lr_mult),
                  synthesis_kwargs=dict(channel_base=m.channel_base, channel_max=m.channel_max,
                                        num_fp16_res=m.num_fp16_res, conv_clamp=m.conv_clamp,
                                        architecture=m.g_architecture))
    D = Discriminator(c_dim=c_dim, img_resolution=resolution, img_channels=channels,
                      architecture=m.d_architecture, channel_base=m.channel_base, channel_max=m.channel_max,
                      num_fp16_res=m.num_fp16_res, conv_clamp=m.conv_clamp,
                      epilogue_kwargs=dict(mbstd_group_size=m.mbstd_group, mbstd_num_channels=m.mbstd_channels))
    return G, D


def frozen_parameters(D: Discriminator, blocks: int) -> frozenset:
    """The parameter names of D's first `blocks` blocks from the input side (fromRGB with the first): they keep
    their initial (train.init's) values. D.block_resolutions runs from the image resolution down."""
    prefixes = tuple(f"b{res}." for res in D.block_resolutions[:blocks])
    return frozenset(name for name, _ in D.named_parameters() if name.startswith(prefixes))


def batch_per_pass(cfg: Config, world: int) -> int:
    """Images per forward pass per process (train.batch_gpu, or train.batch / processes), checked against the
    batch and D's minibatch-stddev groups; `leakguard train --dry-run` checks it too."""
    batch_gpu = cfg.train.batch_gpu or cfg.train.batch // world
    if batch_gpu < 1 or cfg.train.batch % (batch_gpu * world) != 0:
        raise ValueError(f"train.batch={cfg.train.batch} must be a multiple of train.batch_gpu={batch_gpu} "
                         f"x {world} processes")
    group = min(cfg.model.mbstd_group, batch_gpu)
    if cfg.model.mbstd_channels > 0 and cfg.model.mbstd_group > 0 and batch_gpu % group != 0:
        raise ValueError(f"train.batch_gpu={batch_gpu} (images per forward pass; train.batch / processes when not "
                         f"set) must be a multiple of model.mbstd_group={cfg.model.mbstd_group}: D's minibatch-"
                         f"stddev groups form within one pass; change train.batch, train.batch_gpu or model.mbstd_group")
    return batch_gpu


def build_state(cfg: Config, dataset, dist: Dist, reporter: Reporter) -> TrainState:
    """Fresh networks (seeded by train.seed, identical on all ranks), optimizers and augmentation."""
    batch_gpu = batch_per_pass(cfg, dist.world)
    torch.manual_seed(cfg.train.seed)
    G, D = build_networks(cfg, dataset.resolution, dataset.num_channels, dataset.label_dim)
    G, D = G.to(dist.device).train(), D.to(dist.device).train()
    for module in (G, D):
        broadcast_module(module, dist)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    d_frozen = frozen_parameters(D, cfg.train.freeze_d)
    for name, param in D.named_parameters():
        param.requires_grad_(name not in d_frozen)  # what D trains, from the start (a DP audit's canaries read it)

    privacy = build_privacy(cfg, dataset, batch_gpu, lambda key: agree_key(key, dist), dataset_source(dataset))
    o = cfg.optim
    opt_G = make_optimizer(G, o.g_lr, o.betas, o.eps, cfg.loss.pl_interval if cfg.loss.pl_weight > 0 else 0,
                           cfg.leakage_reg.interval if cfg.leakage_reg.weight > 0 else 0)
    # Under DP, R1 is folded into the private D step rather than taking optimizer steps of its own.
    r1_steps = cfg.loss.r1_gamma > 0 and privacy is None
    opt_D = make_optimizer(D, o.d_lr, o.betas, o.eps, cfg.loss.r1_interval if r1_steps else 0)

    augment = ada = None
    if cfg.augment.mode != "noaug":
        augment = make_augment_pipe(cfg.augment.pipe).to(dist.device).train().requires_grad_(False)
        augment.p.fill_(cfg.augment.p)
    if cfg.augment.mode == "ada":
        a = cfg.augment
        ada = AdaController(target=a.target, interval=a.interval, kimg=a.speed_kimg, initial_p=a.p)

    labels = dataset_labels(dataset) if privacy is None else public_labels(dataset.label_dim)
    return TrainState(cfg=cfg, G=G, D=D, G_ema=G_ema, opt_G=opt_G, opt_D=opt_D, augment=augment, ada=ada,
                      pl_mean=torch.zeros([], device=dist.device), labels=torch.as_tensor(labels, device=dist.device),
                      dist=dist, reporter=reporter, batch_gpu=batch_gpu, privacy=privacy, d_frozen=d_frozen)


def dataset_source(dataset) -> str:
    path = getattr(dataset, "path", None)
    return f"{path} (data.path)" if path is not None else f"SynthFaces {dataset.name}"


def agree_key(key: int, dist: Dist) -> int:
    """Rank 0's secret key on every rank."""
    if dist.world == 1:
        return key
    words = torch.tensor(key_words(key) if dist.is_main else [0] * 4, dtype=torch.int64, device=dist.device)
    dist.all_sum(words)
    return key_from_words(words.tolist())


def public_labels(c_dim: int) -> np.ndarray:
    """Under DP the fakes' labels cannot follow the dataset's label histogram (private): each class is
    equally likely, one-hot ([c_dim, c_dim]; [1, 0] when unconditional)."""
    return np.eye(c_dim, dtype=np.float32) if c_dim > 0 else np.zeros([1, 0], dtype=np.float32)


def dataset_labels(dataset):
    """[N, c_dim] float32 labels of every image (c_dim may be 0)."""
    n = len(dataset)
    if dataset.label_dim == 0:
        return np.zeros([n, 0], dtype=np.float32)
    return np.stack([dataset.get_label(i) for i in range(n)]).astype(np.float32)
