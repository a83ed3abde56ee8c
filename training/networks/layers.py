"""Building blocks shared by the StyleGAN2 generator and discriminator (Karras et al. 2020,
"Analyzing and Improving the Image Quality of StyleGAN"): equalized-learning-rate layers,
modulated convolution and the minibatch standard deviation layer.

Parameter and buffer names, registration order and initialisation follow the official
StyleGAN2-ADA networks, so official state dicts load with strict=True.
"""
import numpy as np
import torch
from torch import nn

from cuda_ops import bias_act as ba
from cuda_ops import upfirdn2d as fir
from cuda_ops.conv2d_resample import conv2d_resample


ARCHITECTURES = ("orig", "skip", "resnet")


def check_architecture(architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture={architecture!r} is not one of {', '.join(ARCHITECTURES)}")


def compute_dtype(use_fp16: bool, force_fp32: bool, device: torch.device, full: torch.dtype) -> torch.dtype:
    """float16 for fp16 layers on CUDA, where it is fast and supported; otherwise the parameters'
    own dtype (float32 as in the official networks, float64 for derivative checks)."""
    return torch.float16 if use_fp16 and not force_fp32 and device.type == "cuda" else full


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm: x / sqrt(mean(x^2)) along `dim`."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalized learning rate: weights stored as N(0, 1/lr_multiplier^2) and
    scaled at run time by lr_multiplier / sqrt(in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1, bias_init: float = 0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], np.float32(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / np.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.linear_out = nn.Identity()  # the pre-activation, where DP's per-unit gradients read it (dp.per_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return self.linear_out(torch.addmm(b.unsqueeze(0), x, w.t()))
        return ba.bias_act(self.linear_out(x.matmul(w.t())), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Convolution with equalized learning rate, optional FIR up/downsampling, bias, activation and
    clamp. `trainable=False` stores weight and bias as buffers (frozen discriminator layers)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, resample_filter=(1, 3, 3, 1),
                 conv_clamp: float | None = None, channels_last: bool = False, trainable: bool = True):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", fir.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / np.sqrt(in_channels * kernel_size ** 2)
        self.act_gain = ba.activation_funcs[activation].def_gain
        self.linear_out = nn.Identity()  # the convolution's output: DP's per-unit gradients read it (dp.per_layer)

        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]).to(memory_format=memory_format)
        bias = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(bias) if bias is not None else None
        else:
            self.register_buffer("weight", weight)
            if bias is not None:
                self.register_buffer("bias", bias)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1) -> torch.Tensor:  # [N, C_in, H, W] -> [N, C_out, H', W']
        w = self.weight * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = self.linear_out(conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, down=self.down,
                                            padding=self.padding, flip_weight=(self.up == 1)))
        act_clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ba.bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=act_clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, "
                f"up={self.up}, down={self.down}")


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, down: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused_modconv: bool = True) -> torch.Tensor:
    """StyleGAN2 modulated convolution (paper eq. 1-3): w'_ijk = s_i w_ijk, then demodulation
    w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk^2 + eps). x [N, I, H, W], weight [O, I, kh, kw], styles [N, I].

    Fused: one grouped convolution with per-sample weights. Not fused: scale activations before and
    after a shared convolution (cheaper to differentiate in training). Both give the same numbers."""
    N = x.shape[0]
    O, I, kh, kw = weight.shape
    if styles.shape != (N, I):
        raise ValueError(f"modulated_conv2d: styles must be [{N}, {I}], got {tuple(styles.shape)}")

    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so the per-sample weights stay in fp16 range; demodulation cancels the scale.
        weight = weight * (1 / np.sqrt(I * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(N, 1, I, 1, 1)  # [N, O, I, kh, kw]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    if demodulate and fused_modconv:
        w = w * dcoefs.reshape(N, O, 1, 1, 1)

    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(N, I, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(N, O, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    # Fold the batch into channels and run one grouped convolution.
    x = x.reshape(1, N * I, *x.shape[2:])
    w = w.reshape(N * O, I, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=N,
                        flip_weight=flip_weight)
    x = x.reshape(N, O, *x.shape[2:])
    if noise is not None:
        x = x + noise
    return x


class MinibatchStdLayer(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018): appends, per group of `group_size`
    samples, the mean over pixels and channel groups of the per-feature std across the group.
    Sample i belongs to group i % (N / group_size), as in the official layer."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C + F, H, W]
        N, C, H, W = x.shape
        G = min(self.group_size, N) if self.group_size is not None else N
        F = self.num_channels
        if N % G != 0:
            raise ValueError(f"minibatch std: batch size {N} must be divisible by mbstd_group_size {G}")
        if C % F != 0:
            raise ValueError(f"minibatch std: {C} channels are not divisible by mbstd_num_channels {F}")
        y = x.reshape(G, -1, F, C // F, H, W)     # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = y.square().mean(dim=0)                # [n, F, c, H, W] variance over the group
        y = (y + 1e-8).sqrt()
        y = y.mean(dim=[2, 3, 4])                 # [n, F]
        y = y.reshape(-1, F, 1, 1).repeat(G, 1, H, W)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"
