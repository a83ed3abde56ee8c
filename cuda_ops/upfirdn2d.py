"""upfirdn2d: upsample by zero insertion, pad, convolve with a 2D FIR filter, downsample.

Same signature and numbers as the official StyleGAN2-ADA op, so the official fixtures apply. The
filter is a true convolution kernel (flipped before torch's correlation) unless `flip_filter=True`.
A 1D filter `[fw]` is applied separably along x then y; a 2D filter `[fh, fw]` directly.
"""
from typing import Sequence

import torch
import torch.nn.functional as F

from cuda_ops import _impl, _kernels
from cuda_ops._upfirdn2d_fused import upfirdn2d_fused

FilterLike = torch.Tensor | Sequence[float] | Sequence[Sequence[float]] | None


def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    sx, sy = value
    if not (isinstance(sx, int) and isinstance(sy, int)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return sx, sy


def _parse_scaling(value, name: str) -> tuple[int, int]:
    sx, sy = _pair(value, name)
    if sx < 1 or sy < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return sx, sy


def parse_padding(padding) -> tuple[int, int, int, int]:
    """int, [px, py] or [x0, x1, y0, y1] -> (x0, x1, y0, y1)."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return tuple(padding)
    raise ValueError(f"padding must be an int, [px, py] or [x0, x1, y0, y1], got {padding!r}")


def get_filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(fw, fh) of a prepared filter; a 1D (separable) filter has the same size on both axes."""
    if f is None:
        return 1, 1
    if f.ndim not in (1, 2):
        raise ValueError(f"filter must be 1D or 2D, got shape {tuple(f.shape)}")
    return f.shape[-1], f.shape[0]


def setup_filter(f: FilterLike, device=torch.device("cpu"), normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1, separable: bool | None = None) -> torch.Tensor:
    """Turns filter taps into the float32 tensor the ops take: normalised to sum 1, 1D taps
    expanded to their outer product unless separable (default: separable when 8 taps or more)."""
    if f is None:
        f = 1
    f = torch.as_tensor(f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"filter taps must be a non-empty scalar, 1D or 2D array, got shape {tuple(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if f.ndim != (1 if separable else 2):
        raise ValueError(f"a separable filter must be 1D, got shape {tuple(f.shape)}")
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f.to(device=device)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up=1, down=1, padding=0, flip_filter: bool = False,
              gain: float = 1, impl: str = "auto") -> torch.Tensor:
    """x [N, C, H, W] -> [N, C, (H*up_y + y0 + y1 - fh + 1) // down_y, ... same for x]."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"upfirdn2d expects x of shape [N, C, H, W], got {getattr(x, 'shape', type(x))}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    if not isinstance(f, torch.Tensor) or f.ndim not in (1, 2) or not f.is_floating_point():
        raise ValueError("upfirdn2d expects f from setup_filter(): a float tensor of shape [fw] or [fh, fw]")
    args = (_parse_scaling(up, "up"), _parse_scaling(down, "down"), parse_padding(padding), flip_filter, gain)
    impl = _impl.resolve("upfirdn2d", impl, x)
    # The fused path has no gradient for f: a trainable filter goes through the reference.
    if impl == "ref" or f.requires_grad or _impl.under_transform(f):
        return _upfirdn2d_ref(x, f, *args)
    return upfirdn2d_fused(x, f, *args, kernel=_kernels.get(impl))


def _upfirdn2d_ref(x, f, up, down, padding, flip_filter, gain):
    N, C, H, W = x.shape
    upx, upy = up
    downx, downy = down
    x0, x1, y0, y1 = padding

    # Zero insertion: each input pixel is followed by (up - 1) zeros on each axis.
    if upx > 1 or upy > 1:
        x = x.reshape(N, C, H, 1, W, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(N, C, H * upy, W * upx)

    # Positive padding adds zeros, negative padding crops.
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]

    # conv2d correlates; a convolution needs the filter flipped.
    f = f * (gain ** (f.ndim / 2))
    f = f.to(x.dtype)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].expand(C, 1, *f.shape), groups=C)
    else:
        x = F.conv2d(x, f[None, None, None, :].expand(C, 1, 1, f.shape[0]), groups=C)
        x = F.conv2d(x, f[None, None, :, None].expand(C, 1, f.shape[0], 1), groups=C)

    if downx > 1 or downy > 1:
        x = x[:, :, ::downy, ::downx]
    return x


def filter2d(x, f, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Filters without changing resolution (beyond `padding`): output [N, C, H + y0 + y1, W + x0 + x1]."""
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [x0 + fw // 2, x1 + (fw - 1) // 2, y0 + fh // 2, y1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=p, flip_filter=flip_filter, gain=gain, impl=impl)


def upsample2d(x, f, up=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Upsamples by `up` with the FIR filter f, keeping the DC gain: output [N, C, H*up_y, W*up_x] for padding 0."""
    upx, upy = _parse_scaling(up, "up")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [x0 + (fw + upx - 1) // 2, x1 + (fw - upx) // 2, y0 + (fh + upy - 1) // 2, y1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=(upx, upy), padding=p, flip_filter=flip_filter, gain=gain * upx * upy, impl=impl)


def downsample2d(x, f, down=2, padding=0, flip_filter=False, gain=1, impl="auto"):
    """Lowpass-filters with f and downsamples by `down`: output [N, C, H//down_y, W//down_x] for padding 0."""
    downx, downy = _parse_scaling(down, "down")
    x0, x1, y0, y1 = parse_padding(padding)
    fw, fh = get_filter_size(f)
    p = [x0 + (fw - downx + 1) // 2, x1 + (fw - downx) // 2, y0 + (fh - downy + 1) // 2, y1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=(downx, downy), padding=p, flip_filter=flip_filter, gain=gain, impl=impl)
