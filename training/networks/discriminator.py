"""StyleGAN2 discriminator (Karras et al. 2020, fig. 7): blocks from img_resolution down to 8 px,
then an epilogue at 4x4 with minibatch std, conv, fc and a projection-conditioned output
(Miyato & Koyama 2018) when c_dim > 0.

Constructor arguments and state_dict names follow the official StyleGAN2-ADA Discriminator.
"""
import numpy as np
import torch
from torch import nn

from cuda_ops import upfirdn2d as fir
from training.networks.layers import (Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer, check_architecture,
                                     compute_dtype)
from training.networks.mapping import MappingNetwork


class DiscriminatorBlock(nn.Module):
    """fromRGB (first block, or every block for `skip`), conv0, conv1 with downsampling x2, and a
    1x1 downsampling shortcut for `resnet` (outputs summed with gain sqrt(0.5) each)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 first_layer_idx: int, architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter=(1, 3, 3, 1), conv_clamp: float | None = None, use_fp16: bool = False,
                 fp16_channels_last: bool = False, freeze_layers: int = 0):
        super().__init__()
        check_architecture(architecture)
        if in_channels not in (0, tmp_channels):
            raise ValueError(f"discriminator block b{resolution}: in_channels must be 0 or {tmp_channels}, "
                             f"got {in_channels}")
        self.in_channels = in_channels
        self.resolution = resolution
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.channels_last = use_fp16 and fp16_channels_last
        self.register_buffer("resample_filter", fir.setup_filter(list(resample_filter)))

        # Layers with a global index below `freeze_layers` are frozen (stored as buffers).
        self.num_layers = 0

        def trainable() -> bool:
            idx = self.first_layer_idx + self.num_layers
            self.num_layers += 1
            return idx >= freeze_layers

        common = dict(activation=activation, conv_clamp=conv_clamp, channels_last=self.channels_last)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, trainable=trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=trainable(), **common)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, down=2, trainable=trainable(),
                                 resample_filter=resample_filter, **common)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    trainable=trainable(), resample_filter=resample_filter,
                                    channels_last=self.channels_last)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, force_fp32: bool = False):
        device = (x if x is not None else img).device
        dtype = compute_dtype(self.use_fp16, force_fp32, device, self.conv0.weight.dtype)
        fp16 = dtype == torch.float16
        memory_format = torch.channels_last if self.channels_last and fp16 else torch.contiguous_format

        if x is not None:
            x = x.to(dtype=dtype, memory_format=memory_format)
        if self.in_channels == 0 or self.architecture == "skip":
            img = img.to(dtype=dtype, memory_format=memory_format)
            y = self.fromrgb(img)
            x = x + y if x is not None else y
            img = fir.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None

        if self.architecture == "resnet":
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=np.sqrt(0.5))
            x = y + x
        else:
            x = self.conv0(x)
            x = self.conv1(x)
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}"


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: (fromRGB for `skip`), minibatch std, 3x3 conv, fc, and the output layer; with a
    class embedding cmap the score is <out(x), cmap> / sqrt(cmap_dim) (projection discriminator)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None):
        super().__init__()
        check_architecture(architecture)
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.img_channels = img_channels
        self.architecture = architecture

        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = (MinibatchStdLayer(group_size=mbstd_group_size, num_channels=mbstd_num_channels)
                      if mbstd_num_channels > 0 else None)
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3,
                                activation=activation, conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None,
                force_fp32: bool = False) -> torch.Tensor:  # x [N, C, 4, 4] -> [N, 1]
        full = self.conv.weight.dtype  # the head always runs in full precision
        x = x.to(dtype=full, memory_format=torch.contiguous_format)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(dtype=full, memory_format=torch.contiguous_format))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, architecture={self.architecture}, cmap_dim={self.cmap_dim}"


class Discriminator(nn.Module):
    """D(img [N, C, H, W], c [N, c_dim]) -> logits [N, 1]."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: float | None = None, cmap_dim: int | None = None, block_kwargs: dict | None = None,
                 mapping_kwargs: dict | None = None, epilogue_kwargs: dict | None = None):
        super().__init__()
        # What a checkpoint needs to rebuild this network (training.checkpoint).
        self.init_kwargs = dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                                architecture=architecture, channel_base=channel_base, channel_max=channel_max,
                                num_fp16_res=num_fp16_res, conv_clamp=conv_clamp, cmap_dim=cmap_dim,
                                block_kwargs=dict(block_kwargs or {}), mapping_kwargs=dict(mapping_kwargs or {}),
                                epilogue_kwargs=dict(epilogue_kwargs or {}))
        log2 = int(np.log2(img_resolution)) if img_resolution > 0 else 0
        if img_resolution < 8 or img_resolution != 2 ** log2:
            raise ValueError(f"discriminator img_resolution must be a power of two >= 8, got {img_resolution}")
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_resolution_log2 = log2
        self.img_channels = img_channels
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0

        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res], channels[res // 2],
                                       resolution=res, first_layer_idx=layer_idx, use_fp16=(res >= fp16_resolution),
                                       **(block_kwargs or {}), **common)
            setattr(self, f"b{res}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, **(epilogue_kwargs or {}),
                                        **common)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None, update_emas: bool = False,
                **block_kwargs) -> torch.Tensor:
        expected = (self.img_channels, self.img_resolution, self.img_resolution)
        if img.ndim != 4 or tuple(img.shape[1:]) != expected:
            raise ValueError(f"discriminator: img must be [N, {expected[0]}, {expected[1]}, {expected[2]}], "
                             f"got {tuple(img.shape)}")
        x, img = self.blocks(None, img, self.block_resolutions, **block_kwargs)
        return self.head(x, img, c)

    def blocks(self, x: torch.Tensor | None, img: torch.Tensor | None, resolutions: list[int],
               **block_kwargs) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The blocks of `resolutions` (consecutive, from the input side): features and the skip image."""
        for res in resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        return x, img

    def head(self, x: torch.Tensor, img: torch.Tensor | None, c: torch.Tensor | None) -> torch.Tensor:
        """The epilogue (minibatch-stddev, conv, fc, conditioning) on the last block's output."""
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"
