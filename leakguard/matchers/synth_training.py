"""Training the synth matchers: SynthNetA / SynthNetB on identity-labelled images with the ArcFace loss.

    images, ids = read_identity_images("faces.zip")                # uint8 [N, 3, H, W], int64 [N]
    net, summary = train_matcher(images, ids, TrainSettings(arch="synth"))
    save_checkpoint("synth.pt", net, summary)                       # SynthMatcher(weights="synth.pt")

The images go through the matcher's own preprocessing (resize to the input size, [-1, 1]), then light
augmentation (flips, shifts of a few pixels, brightness and contrast). AdamW with a cosine learning rate
and a margin that grows from 0 to m over the first epochs (ArcFace from scratch on little data can
stall with the full margin at the start). Fixed seeds: the same data and settings give the same net.
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

from leakguard.atomic import atomic_open
from leakguard.matchers.arcface_loss import ArcFaceLoss
from leakguard.matchers.nets.synth_nets import ARCHS, FORMAT, build_net


@dataclass
class TrainSettings:
    arch: str = "synth"          # a key of synth_nets.ARCHS: synth (SynthNetA) or synth_b (SynthNetB)
    embedding_dim: int = 128     # D
    input_size: int = 64         # px, the network's square input; images are resized to it
    width: int | None = None     # channels of the first stage; None: the architecture's default
    epochs: int = 20             # passes over the data
    batch: int = 64              # images per step
    lr: float = 2e-3             # AdamW peak learning rate, cosine decay to 0
    weight_decay: float = 5e-4   # AdamW decoupled weight decay
    s: float = 30.0              # ArcFace logit scale
    m: float = 0.5               # ArcFace angular margin, radians
    margin_warmup: float = 0.2   # fraction of the steps over which the margin grows from 0 to m
    max_shift: float = 0.0625    # augmentation: largest shift, fraction of the image side
    flip: bool = True            # augmentation: random horizontal flips
    brightness: float = 0.15     # augmentation: largest brightness offset, in [-1, 1] pixel units
    contrast: float = 0.15       # augmentation: largest relative contrast change
    seed: int = 0
    device: str = "cpu"

    def check(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch={self.arch!r}: expected one of {', '.join(ARCHS)}")
        for key in ("embedding_dim", "epochs", "batch"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)}: must be >= 1")
        if self.batch < 2:
            raise ValueError(f"batch={self.batch}: must be >= 2 (batch norm)")
        if self.input_size < 16 or self.input_size % 16:
            raise ValueError(f"input_size={self.input_size}: must be a multiple of 16, at least 16")
        if self.width is not None and self.width < 1:
            raise ValueError(f"width={self.width}: must be >= 1 (or None for the architecture's default)")
        if self.lr <= 0:
            raise ValueError(f"lr={self.lr}: must be > 0")


def net_kwargs(st: TrainSettings) -> dict:
    """build_net's arguments besides arch, as stored in the checkpoint."""
    kw = {"embedding_dim": st.embedding_dim, "input_size": st.input_size}
    return kw if st.width is None else {**kw, "width": st.width}


def preprocess(images: torch.Tensor, input_size: int) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float32 [N, 3, S, S] in [-1, 1], resized as TorchMatcher(alignment='none') does."""
    x = images.float() / 127.5 - 1
    if tuple(x.shape[2:]) != (input_size, input_size):
        x = F.interpolate(x, size=(input_size, input_size), mode="bilinear", antialias=True, align_corners=False)
    return x


def augment(x: torch.Tensor, st: TrainSettings, gen: torch.Generator) -> torch.Tensor:
    """[n, 3, S, S] in [-1, 1] -> the same with random flips, sub-pixel shifts (border pixels repeat),
    brightness and contrast; every draw from `gen`."""
    n = len(x)
    u = torch.rand(n, 5, generator=gen, device=gen.device).to(x.device)  # [n, 5] uniform draws
    sx = torch.where(u[:, 0] < 0.5, -1.0, 1.0) if st.flip else torch.ones(n, device=x.device)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = sx, 1.0
    theta[:, :, 2] = (u[:, 1:3] * 2 - 1) * (2 * st.max_shift)  # grid units: the side spans 2
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    gain = 1 + (u[:, 3] * 2 - 1).view(n, 1, 1, 1) * st.contrast
    offset = (u[:, 4] * 2 - 1).view(n, 1, 1, 1) * st.brightness
    return ((x - mean) * gain + mean + offset).clamp(-1, 1)


def _labels(identities: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Identity ids [N] (any ints) -> class indices 0..C-1 [N], C."""
    ids, labels = torch.unique(identities, return_inverse=True)
    return labels, len(ids)


def train_matcher(images: torch.Tensor, identities: torch.Tensor, settings: TrainSettings | None = None,
                  data_name: str = "", log: Callable[[str], None] | None = print) -> tuple[torch.nn.Module, dict]:
    """uint8 [N, 3, H, W] images of the people `identities` [N] -> (trained net in eval mode on the CPU,
    summary of plain values for the checkpoint)."""
    st = settings or TrainSettings()
    st.check()
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"train_matcher: expected uint8 images [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
    if identities.shape != images.shape[:1]:
        raise ValueError(f"train_matcher: expected identities [{len(images)}], got {tuple(identities.shape)}")
    labels, num_classes = _labels(identities)
    if num_classes < 2:
        raise ValueError(f"train_matcher: the data has {num_classes} identity; a matcher needs at least 2 people")
    device = torch.device(st.device)
    x_all = preprocess(images, st.input_size).to(device)  # [N, 3, S, S]
    y_all = labels.to(device)
    batch = min(st.batch, len(x_all))
    steps_per_epoch = max(1, len(x_all) // batch)  # drop the ragged last batch: batch norm wants full ones
    total = st.epochs * steps_per_epoch
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # seeds the initialisation without touching the caller's RNG
        torch.manual_seed(st.seed)
        net = build_net(st.arch, **net_kwargs(st)).to(device)
        head = ArcFaceLoss(st.embedding_dim, num_classes, s=st.s, m=0.0).to(device)
    gen = torch.Generator(device="cpu").manual_seed(st.seed)
    opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=st.lr, weight_decay=st.weight_decay)
    net.train()
    step, history = 0, []
    for epoch in range(st.epochs):
        order = torch.randperm(len(x_all), generator=gen).to(device)
        loss_sum = correct = seen = 0
        for k in range(steps_per_epoch):
            idx = order[k * batch:(k + 1) * batch]
            frac = step / total
            head.m = st.m * min(1.0, frac / st.margin_warmup) if st.margin_warmup > 0 else st.m
            for group in opt.param_groups:
                group["lr"] = st.lr * 0.5 * (1 + math.cos(math.pi * frac))
            emb = net(augment(x_all[idx], st, gen))  # [batch, D]
            losses = head(emb, y_all[idx])            # [batch]
            opt.zero_grad(set_to_none=True)
            losses.mean().backward()
            opt.step()
            step += 1
            with torch.no_grad():
                nearest = F.linear(F.normalize(emb, dim=1), F.normalize(head.weight, dim=1)).argmax(1)
                correct += int((nearest == y_all[idx]).sum())
            loss_sum += float(losses.detach().sum())
            seen += len(idx)
        history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen})
        if log:
            log(f"matcher {st.arch}: epoch {epoch + 1}/{st.epochs} loss {loss_sum / seen:.3f} "
                f"train accuracy {correct / seen:.3f} ({time.perf_counter() - start:.0f} s)")
    net.eval().cpu()
    summary = {"data": data_name, "images": len(x_all), "identities": num_classes, "steps": step,
               "seconds": round(time.perf_counter() - start, 1), "settings": dataclasses.asdict(st),
               "final_loss": history[-1]["loss"], "final_train_accuracy": history[-1]["train_accuracy"],
               "history": history}
    return net, summary


def save_checkpoint(path: str | os.PathLike, net: torch.nn.Module, summary: dict) -> Path:
    """Writes the net and how it was trained as plain data (loads with weights_only=True), atomically:
    into a temporary file beside `path`, then renamed over it."""
    st = summary["settings"]
    ckpt = {"format": FORMAT, "arch": st["arch"], "net_kwargs": net_kwargs(TrainSettings(**st)),
            "embedding_dim": st["embedding_dim"], "input_size": [st["input_size"], st["input_size"]],
            "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            "summary": summary}
    path = Path(path).expanduser()
    with atomic_open(path, "wb") as f:
        torch.save(ckpt, f)
    return path


def ensure_synth_matcher(arch: str, cache_dir: str | os.PathLike, data: str | os.PathLike,
                         settings: TrainSettings | None = None, log: Callable[[str], None] | None = print) -> Path:
    """The weights of a synth matcher trained on `data` (an identity-labelled zip or folder), trained on first
    use and cached in `cache_dir` under a name derived from the data's bytes, `arch` and the settings.

    leakguard does not build data: callers pass a zip of people disjoint from those the audited generator
    was trained on (e.g. SynthFaces with identity_offset=100000)."""
    from leakguard.identity_data import read_identity_images  # only needed on a cache miss

    st = dataclasses.replace(settings or TrainSettings(), arch=arch)
    st.check()
    data = Path(data).expanduser()
    if not data.exists():
        raise FileNotFoundError(f"ensure_synth_matcher: training data not found: {data}")
    h = hashlib.sha256(repr(sorted(dataclasses.asdict(st).items())).encode())
    for f in ([data] if data.is_file() else sorted(p for p in data.rglob("*") if p.is_file())):
        h.update(f.relative_to(data).as_posix().encode() if f != data else b"")
        h.update(f.read_bytes())
    path = Path(cache_dir).expanduser() / f"{arch}-{h.hexdigest()[:16]}.pt"
    if path.is_file():
        return path
    images, identities = read_identity_images(data)
    net, summary = train_matcher(images, identities, st, data_name=str(data), log=log)
    return save_checkpoint(path, net, summary)
