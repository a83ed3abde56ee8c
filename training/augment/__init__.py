"""The ADA augmentation pipeline (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"): what D sees, reals and fakes alike, is a randomly augmented image, each op applied with
probability p times its weight. The ops are "non-leaking": each is invertible in distribution for p < 1,
so G cannot lower its loss by reproducing the augmentations (keep p below about 0.8).

Geometry (blit and geom) lives in training.augment.geometry, colour in training.augment.color; this
module holds the pipe, its p, and the named presets.
"""
import math

import torch

from training.augment.color import ColorSpec, apply_color, sample_color
from training.augment.geometry import GeomSpec, apply_geometry, sample_inverse_geometry

BLIT = dict(xflip=1, rotate90=1, xint=1)
GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
_GROUPS = {"b": BLIT, "g": GEOM, "c": COLOR}

# Presets are the letters b(lit), g(eom), c(olour) in that order, each group with all its ops at weight 1.
AUGMENT_PRESETS: dict[str, dict] = {
    name: {k: v for letter in name for k, v in _GROUPS[letter].items()}
    for name in ("b", "g", "c", "bg", "bc", "gc", "bgc")
}


class AugmentPipe(torch.nn.Module):
    """ADA (Karras et al. 2020): differentiable, non-leaking augmentations applied with probability p each."""

    def __init__(self, xflip=0., rotate90=0., xint=0., xint_max=0.125, scale=0., rotate=0., aniso=0., xfrac=0.,
                 scale_std=0.2, rotate_max=1., aniso_std=0.2, xfrac_std=0.125,
                 brightness=0., contrast=0., lumaflip=0., hue=0., saturation=0.,
                 brightness_std=0.2, contrast_std=0.5, hue_max=1., saturation_std=1.):
        args = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        super().__init__()
        for name, value in args.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < 0:
                raise ValueError(f"AugmentPipe: {name}={value!r} must be a finite number >= 0")
            args[name] = float(value)
        self.geom = GeomSpec(**{k: args[k] for k in GeomSpec.__dataclass_fields__})
        self.color = ColorSpec(**{k: args[k] for k in ColorSpec.__dataclass_fields__})
        # The overall probability; the training loop (fixed p or training.augment.ada) owns its value.
        self.register_buffer("p", torch.zeros([]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, C, H, W] float, about [-1, 1] -> same shape, dtype and device. Random numbers come
        from torch's global generator of the images' device, so saving and restoring its state replays
        the same augmentations."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point() \
                or 0 in images.shape[1:]:
            raise ValueError(f"AugmentPipe expects float images of shape [N, C, H, W] with C, H, W >= 1, got "
                             f"{_describe(images)}")
        n, channels, height, width = images.shape
        if self.color.enabled() and channels not in (1, 3):
            raise ValueError(f"AugmentPipe: colour ops need 1 or 3 channels, got shape {tuple(images.shape)}; "
                             f"use a preset without 'c' ({', '.join(k for k in AUGMENT_PRESETS if 'c' not in k)})")
        if n == 0:
            return images
        if self.geom.enabled():
            G_inv = sample_inverse_geometry(self.geom, self.p, n, height, width, images.device)  # [N, 3, 3]
            images = apply_geometry(images, G_inv)
        if self.color.enabled():
            C = sample_color(self.color, self.p, n, channels, images.device)  # [N, 4, 4]
            images = apply_color(images, C)
        return images

    def extra_repr(self) -> str:
        ops = [f"{k}={getattr(spec, k):g}" for spec in (self.geom, self.color)
               for k in spec.__dataclass_fields__ if getattr(spec, k) != getattr(type(spec)(), k)]
        return ", ".join(ops)


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"shape {tuple(x.shape)} dtype {x.dtype}"
    return type(x).__name__


def make_augment_pipe(preset: str) -> AugmentPipe:
    """A pipe with the ops of a named preset at weight 1 and p = 0 (set p, or let training.augment.ada move it)."""
    if preset not in AUGMENT_PRESETS:
        raise ValueError(f"unknown augmentation preset {preset!r}; valid presets: {', '.join(AUGMENT_PRESETS)}")
    return AugmentPipe(**AUGMENT_PRESETS[preset])
