"""conv2d_resample: 2D convolution combined with FIR up/downsampling, as StyleGAN2 layers use it.

Semantics (the generic path): zero-insert by `up`, pad, FIR-filter with f (gain up^2), convolve
with w, FIR-filter with f and keep every `down`-th pixel. Convolution and FIR filtering commute,
so the fast paths reorder them to run the expensive convolution at the lower resolution:
upsampling becomes a strided transposed convolution followed by the FIR filter, downsampling a
FIR filter followed by a strided convolution.

`flip_weight=True` runs w as a correlation (torch's conv2d), False as a true convolution; the
official layers use False for upsampling layers, so checkpoints only match with the same choice.
"""
import torch
import torch.nn.functional as F

from cuda_ops import upfirdn2d as fir


def _conv(x, w, stride=1, padding=0, groups=1, transpose=False, flip_weight=True):
    if not flip_weight:
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding=0, groups: int = 1, flip_weight: bool = True, flip_filter: bool = False) -> torch.Tensor:
    """x [N, C_in, H, W], w [C_out, C_in // groups, kh, kw] -> [N, C_out, H*up/down, W*up/down] for 'same' padding."""
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"conv2d_resample expects 4D x and w, got {tuple(x.shape)} and {tuple(w.shape)}")
    if x.shape[1] != w.shape[1] * groups:
        raise ValueError(f"conv2d_resample: x has {x.shape[1]} channels but w {tuple(w.shape)} with "
                         f"groups={groups} expects {w.shape[1] * groups}")
    if not (isinstance(up, int) and isinstance(down, int) and up >= 1 and down >= 1):
        raise ValueError(f"conv2d_resample: up and down must be ints >= 1, got up={up}, down={down}")
    out_channels, in_per_group, kh, kw = w.shape
    px0, px1, py0, py1 = pad = _padding(f, up, down, padding)

    if kw == 1 and kh == 1 and up > 1 and down == 1:  # 1x1: convolve first, upsample after
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return fir.upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)

    if up > 1:
        # A transposed convolution computes the full convolution of the zero-inserted input with w;
        # the FIR filter then takes the window the generic path would have produced.
        if groups == 1:
            wt = w.transpose(0, 1)  # [C_in, C_out, kh, kw]
        else:
            wt = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            wt = wt.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        qx0, qx1 = px0 - (kw - 1), px1 - (kw - up)
        qy0, qy1 = py0 - (kh - 1), py1 - (kh - up)
        # Cropping both sides equally is cheaper inside the transposed convolution.
        tx, ty = max(min(-qx0, -qx1), 0), max(min(-qy0, -qy1), 0)
        x = _conv(x, wt, stride=up, padding=[ty, tx], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = fir.upfirdn2d(x, f, padding=[qx0 + tx, qx1 + tx, qy0 + ty, qy1 + ty], gain=up ** 2, flip_filter=flip_filter)
        if down > 1:
            x = fir.upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x

    x, stride, conv_padding = _strided_input(x, f, kh, kw, down, pad, flip_filter)
    return _conv(x, w, stride=stride, padding=conv_padding, groups=groups, flip_weight=flip_weight)


def _padding(f: torch.Tensor | None, up: int, down: int, padding) -> list[int]:
    """[x0, x1, y0, y1] of the generic path: the given padding plus enough to keep the FIR filters centred."""
    fw, fh = fir.get_filter_size(f)
    px0, px1, py0, py1 = fir.parse_padding(padding)
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    return [px0, px1, py0, py1]


def _strided_input(x: torch.Tensor, f: torch.Tensor | None, kh: int, kw: int, down: int, pad: list[int],
                   flip_filter: bool) -> tuple[torch.Tensor, int, int | list[int]]:
    """Without upsampling, conv2d_resample is one (strided) convolution of a FIR-filtered input:
    (that input, the stride, the convolution's padding)."""
    px0, px1, py0, py1 = pad
    if kw == 1 and kh == 1 and down > 1:  # 1x1: downsample first, convolve fewer pixels
        return fir.upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter), 1, 0
    if down > 1:  # FIR filter, then a strided convolution
        return fir.upfirdn2d(x, f, padding=pad, flip_filter=flip_filter), down, 0
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:  # plain convolution
        return x, 1, [py0, px0]
    return fir.upfirdn2d(x, None, padding=pad), 1, 0  # asymmetric or negative padding: pad (or crop) first


def conv2d_resample_weight_grads(x: torch.Tensor, dy: torch.Tensor, kernel_size: tuple[int, int],
                                 f: torch.Tensor | None = None, down: int = 1, padding=0, flip_weight: bool = True,
                                 flip_filter: bool = False) -> torch.Tensor:
    """The gradient of sum <conv2d_resample(x, w), dy> with respect to w, one per group of samples:
    x [n, G, C_in, H, W], dy [n, G, C_out, H', W'] (n samples of each of G groups) -> [G, C_out, C_in, kh, kw],
    each group's n samples summed.

    conv2d_resample is linear in w, so this needs no forward pass: one weight-backward of the strided
    convolution it runs (no upsampling), with the G groups folded into channels as a grouped convolution.
    DP's per-unit gradients (training.dp.per_layer) read it."""
    if x.ndim != 5 or dy.ndim != 5 or x.shape[:2] != dy.shape[:2]:
        raise ValueError(f"conv2d_resample_weight_grads expects x [n, G, C, H, W] and dy [n, G, O, H', W'], got "
                         f"{tuple(x.shape)} and {tuple(dy.shape)}")
    n, G, C = x.shape[:3]
    O = dy.shape[2]
    kh, kw = kernel_size
    xs, stride, conv_padding = _strided_input(x.flatten(0, 1), f, kh, kw, down, _padding(f, 1, down, padding),
                                              flip_filter)
    xs = xs.reshape(n, G * C, *xs.shape[2:])                              # the groups side by side in channels
    dy = dy.flatten(1, 2).to(xs.dtype)                                     # [n, G O, H', W']
    pad = [conv_padding] * 2 if isinstance(conv_padding, int) else conv_padding
    weight = torch.empty([G * O, C, kh, kw], dtype=xs.dtype, device=xs.device)  # only its shape is read
    _, dw, _ = torch.ops.aten.convolution_backward(dy, xs, weight, None, [stride] * 2, pad, [1, 1], False, [0, 0],
                                                   G, [False, True, False])
    dw = dw.view(G, O, C, kh, kw)
    return dw if flip_weight else dw.flip([3, 4])
