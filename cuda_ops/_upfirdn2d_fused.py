"""upfirdn2d through the fused kernels. The op is linear in x, so its backward is the same op on dy
(the filter flipped, up and down swapped, paddings chosen to land on x's pixels), and derivatives of
any order come from the same kernel. A 1D filter runs as two passes: along x, then along y."""
from types import ModuleType

import torch


def upfirdn2d_fused(x: torch.Tensor, f: torch.Tensor, up: tuple[int, int], down: tuple[int, int],
                    padding: tuple[int, int, int, int], flip_filter: bool, gain: float,
                    kernel: ModuleType) -> torch.Tensor:
    # The gain goes into the taps, in the filter's dtype, as the reference does (sqrt(gain) per axis for a
    # 1D filter): the same rounding, so float64 results agree to the last bits.
    f = (f * (gain ** (f.ndim / 2))).to(x.dtype)
    (upx, upy), (downx, downy), (x0, x1, y0, y1) = up, down, padding
    if f.ndim == 2:
        return _Upfirdn2d.apply(x, f, kernel, up, down, padding, flip_filter)
    x = _Upfirdn2d.apply(x, f[None, :], kernel, (upx, 1), (downx, 1), (x0, x1, 0, 0), flip_filter)
    return _Upfirdn2d.apply(x, f[:, None], kernel, (1, upy), (1, downy), (0, 0, y0, y1), flip_filter)


def _grad_padding(in_hw, out_hw, f_hw, up, down, padding):
    """Paddings of the upfirdn2d that maps dy [out_hw] back onto x [in_hw] (up and down swapped)."""
    (H, W), (OH, OW), (fh, fw) = in_hw, out_hw, f_hw
    (upx, upy), (downx, downy), (x0, x1, y0, y1) = up, down, padding
    return (fw - x0 - 1, W * upx - OW * downx + x0 - upx + 1,
            fh - y0 - 1, H * upy - OH * downy + y0 - upy + 1)


class _Upfirdn2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, kernel, up, down, padding, flip_filter):
        (upx, upy), (downx, downy), (x0, x1, y0, y1) = up, down, padding
        y = kernel.upfirdn2d(x, f, upx, upy, downx, downy, x0, x1, y0, y1, flip_filter, 1.0)
        ctx.save_for_backward(f)
        ctx.args = (kernel, up, down, padding, flip_filter, tuple(x.shape[2:]), tuple(y.shape[2:]))
        return y

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        kernel, up, down, padding, flip_filter, in_hw, out_hw = ctx.args
        pad = _grad_padding(in_hw, out_hw, tuple(f.shape), up, down, padding)
        dx = _Upfirdn2d.apply(dy, f, kernel, down, up, pad, not flip_filter)
        assert dx.shape[2:] == in_hw, (dx.shape, in_hw)
        return dx, None, None, None, None, None, None
