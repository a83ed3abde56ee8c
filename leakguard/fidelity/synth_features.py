"""The `synthfaces` feature extractor: a CNN trained to regress the render parameters of SynthFaces images,
whose penultimate layer is the feature space for FD, KID and precision/recall on SynthFaces data.

    net, summary = train_feature_net(images, targets, FeatureNetSettings())   # uint8 [N,3,H,W], [N, P]
    save_feature_net("synthfaces-32.pt", net, summary)
    features = SynthFacesFeatures("synthfaces-32.pt")                          # features.embed(images) [N, D]

Inception sees ImageNet; this net is trained to see every quantity SynthFaces draws (shape, colours, hair,
beard, glasses, pose, expression, light, background, noise), so FD in its features moves with each of
them. leakguard never builds SynthFaces: the targets come from the caller (training.synthfaces.targets).
The trunk is the synth matcher's SynthNetA (flatten head: it keeps where things sit, which pose needs).
"""
import dataclasses
import hashlib
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from leakguard.atomic import atomic_open
from leakguard.matchers.nets.synth_nets import SynthNetA
from leakguard.matchers.synth_training import preprocess
from leakguard.torch_files import load_failure

FORMAT = "leakguard.synthfaces_features.v1"
HOW_TO_MAKE = "python tools/train_synthfaces_features.py --out PATH (or training.synthfaces.feature_net." \
              "ensure_synthfaces_features(PATH, resolution))"
NET_KWARGS = ("num_targets", "embedding_dim", "input_size", "width")
STD_FLOOR = 1e-6  # a target that never varies is divided by this instead of 0


@dataclass
class FeatureNetSettings:
    input_size: int = 32         # px, the network's square input; images are resized to it
    width: int = 16              # channels of SynthNetA's first stage
    embedding_dim: int = 128     # D, the feature layer
    epochs: int = 15             # passes over the data
    batch: int = 64              # images per step
    lr: float = 3e-3             # AdamW peak learning rate, cosine decay to 0
    weight_decay: float = 1e-4   # AdamW decoupled weight decay
    dropout: float = 0.0         # before the feature layer's fc, training only
    seed: int = 0

    def check(self) -> None:
        if self.input_size < 16 or self.input_size % 16:
            raise ValueError(f"input_size={self.input_size}: must be a multiple of 16, at least 16")
        for key in ("width", "embedding_dim", "epochs"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be >= 1")
        if self.batch < 2:
            raise ValueError(f"batch={self.batch}: must be >= 2 (batch norm)")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.dropout < 1:
            raise ValueError(f"lr={self.lr}, weight_decay={self.weight_decay}, dropout={self.dropout}: need lr > 0, "
                             "weight_decay >= 0 and dropout in [0, 1)")


class FeatureNet(nn.Module):
    """SynthNetA trunk -> features [N, D] (BN1d) -> linear head -> standardized targets [N, P].
    target_mean / target_std (buffers, so in the state dict) undo the standardization."""

    def __init__(self, num_targets: int, embedding_dim: int = 128, input_size: int = 32, width: int = 16,
                 dropout: float = 0.0):
        super().__init__()
        self.input_size = input_size
        self.trunk = SynthNetA(embedding_dim=embedding_dim, input_size=input_size, width=width, dropout=dropout)
        self.head = nn.Linear(embedding_dim, num_targets)
        self.register_buffer("target_mean", torch.zeros(num_targets))
        self.register_buffer("target_std", torch.ones(num_targets))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)                                      # [N, 3, S, S] in [-1, 1] -> [N, D]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))                        # [N, P], standardized

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """uint8 [N, 3, H, W] -> the targets in their own units [N, P] (eval mode, CPU)."""
        out = [self(preprocess(b, self.input_size)) for b in images.split(batch_size)]
        return torch.cat(out) * self.target_std + self.target_mean


def _check_data(images: torch.Tensor, targets: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"train_feature_net: expected uint8 images [N, 3, H, W], got {images.dtype} "
                         f"{tuple(images.shape)}")
    if targets.ndim != 2 or len(targets) != len(images) or targets.shape[1] < 1:
        raise ValueError(f"train_feature_net: expected targets [{len(images)}, P], got {tuple(targets.shape)}")
    if not torch.isfinite(targets).all():
        raise ValueError("train_feature_net: targets hold NaN or inf")


def train_feature_net(images: torch.Tensor, targets: torch.Tensor, settings: FeatureNetSettings | None = None,
                      data_name: str = "", log: Callable[[str], None] | None = print) -> tuple[FeatureNet, dict]:
    """MSE regression of standardized `targets` [N, P] from `images` uint8 [N, 3, H, W] -> (net in eval
    mode on the CPU, summary of plain values). AdamW, cosine learning rate, no augmentation (a flip or
    shift would change the pose targets). Fixed seeds: the same inputs give the same net."""
    st = settings or FeatureNetSettings()
    st.check()
    targets = torch.as_tensor(targets, dtype=torch.float32)
    _check_data(images, targets)
    mean, std = targets.mean(0), targets.std(0).clamp_min(STD_FLOOR)           # [P], [P]
    # in chunks: N large images as float at once would take N x 3 x H x W x 4 bytes before the resize
    x_all = torch.cat([preprocess(b, st.input_size) for b in images.split(256)])  # [N, 3, S, S]
    y_all = (targets - mean) / std                                                 # [N, P]
    batch = min(st.batch, len(x_all))
    steps_per_epoch = max(1, len(x_all) // batch)  # drop the ragged last batch: batch norm wants full ones
    total = st.epochs * steps_per_epoch
    with torch.random.fork_rng(devices=[]):  # seeds the initialisation without touching the caller's RNG
        torch.manual_seed(st.seed)
        net = FeatureNet(targets.shape[1], st.embedding_dim, st.input_size, st.width, st.dropout)
    net.target_mean.copy_(mean)
    net.target_std.copy_(std)
    gen = torch.Generator().manual_seed(st.seed)
    opt = torch.optim.AdamW(net.parameters(), lr=st.lr, weight_decay=st.weight_decay)
    start, step, history = time.perf_counter(), 0, []
    net.train()
    for epoch in range(st.epochs):
        order, loss_sum = torch.randperm(len(x_all), generator=gen), 0.0
        for k in range(steps_per_epoch):
            idx = order[k * batch:(k + 1) * batch]
            for group in opt.param_groups:
                group["lr"] = st.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = F.mse_loss(net(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += float(loss.detach()) * len(idx)
        history.append({"epoch": epoch + 1, "mse": loss_sum / (steps_per_epoch * batch)})
        if log:
            log(f"synthfaces features: epoch {epoch + 1}/{st.epochs} mse {history[-1]['mse']:.4f} "
                f"({time.perf_counter() - start:.0f} s)")
    net.eval()
    summary = {"data": data_name, "images": len(x_all), "num_targets": targets.shape[1], "steps": step,
               "seconds": round(time.perf_counter() - start, 1), "settings": dataclasses.asdict(st),
               "final_mse": history[-1]["mse"], "history": history}
    return net, summary


def r2_scores(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Coefficient of determination per target [P]: 1 - SSE / SS around the targets' own mean (0 = the mean's
    score, 1 = exact). A target constant in `targets` gets 0 if matched exactly there, else -inf."""
    if predictions.shape != targets.shape or predictions.ndim != 2:
        raise ValueError(f"r2_scores: expected predictions and targets of one shape [N, P], got "
                         f"{tuple(predictions.shape)} and {tuple(targets.shape)}")
    t = targets.double()
    sse = (predictions.double() - t).square().sum(0)
    sst = (t - t.mean(0)).square().sum(0)
    return torch.where(sst > 0, 1 - sse / sst.clamp_min(1e-300), torch.where(sse > 0, -math.inf, 0.0))


def save_feature_net(path: str | os.PathLike, net: FeatureNet, summary: dict) -> Path:
    """Writes the net and how it was trained as plain data (loads with weights_only=True), atomically."""
    st = summary["settings"]
    ckpt = {"format": FORMAT,
            "net_kwargs": {"num_targets": net.head.out_features, "embedding_dim": st["embedding_dim"],
                           "input_size": st["input_size"], "width": st["width"]},
            "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            "summary": summary}
    path = Path(path).expanduser()
    with atomic_open(path, "wb") as f:
        torch.save(ckpt, f)
    return path


def _missing(path) -> FileNotFoundError:
    where = "no path given" if path is None else f"not found: {Path(path).expanduser()}"
    return FileNotFoundError(f"feature extractor 'synthfaces' needs its trained weights ({where}); make them "
                             f"with {HOW_TO_MAKE} and pass --features synthfaces=PATH")


def load_feature_net(path: str | os.PathLike | None) -> tuple[FeatureNet, dict]:
    """(net in eval mode, checkpoint summary) from a save_feature_net file; errors name the file."""
    if path is None or not Path(path).expanduser().is_file():
        raise _missing(path)
    path = Path(path).expanduser()
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for files that are not its checkpoints
        raise ValueError(f"{path}: not a synthfaces feature checkpoint ({load_failure(e)})") from None
    found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
    if found != FORMAT:
        raise ValueError(f"{path}: not a synthfaces feature checkpoint (format {found!r}, expected {FORMAT!r}); "
                         f"make one with {HOW_TO_MAKE}")
    kwargs = ckpt.get("net_kwargs")
    if not isinstance(kwargs, dict) or sorted(kwargs) != sorted(NET_KWARGS) \
            or not all(isinstance(v, int) and v > 0 for v in kwargs.values()):
        raise ValueError(f"{path}: net_kwargs {str(kwargs)[:120]}; expected positive ints for {', '.join(NET_KWARGS)}")
    net = FeatureNet(**kwargs)
    try:
        net.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: the state dict does not fit FeatureNet({kwargs}): {str(e)[:300]}") from None
    return net.eval(), ckpt.get("summary") or {}


class SynthFacesFeatures:
    """The penultimate layer of a FeatureNet (its D features, not its predictions) as fidelity features."""
    name = "synthfaces"
    metric_prefix = "fd_synthfaces"

    def __init__(self, weights: str | os.PathLike | None, device: str | torch.device = "cpu", batch_size: int = 256):
        self.net, self.summary = load_feature_net(weights)
        self.path = Path(weights).expanduser()
        self.device, self.batch_size = torch.device(device), batch_size
        self.net.to(self.device)
        self.embedding_dim = self.net.head.in_features
        self.version = f"synthfaces-{hashlib.sha256(self.path.read_bytes()).hexdigest()[:16]}"

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"synthfaces: expected uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        out = [self.net.features(preprocess(b.to(self.device), self.net.input_size)).float().cpu()
               for b in images.split(self.batch_size)]
        return torch.cat(out) if out else torch.zeros([0, self.embedding_dim])
