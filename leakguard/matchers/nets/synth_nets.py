"""Two small face-embedding CNNs for the SynthFaces domain, different by design so that an audit
with both is not fooled by one network's blind spots:

SynthNetA  conv-BN-PReLU stages with stride-2 downsampling, then BN, flatten, fc, BN1d: the layout of
           InsightFace's IResNet head, which keeps where a feature sits on the face.
SynthNetB  inverted residual blocks with depthwise 3x3 convolutions (MobileNetV2, Sandler et al. 2018),
           SiLU, global average pooling, fc, BN1d: translation-invariant pooling instead of a flatten.

Both take [N, 3, S, S] in [-1, 1] for the S they were built with (64 by default) and return [N, D].
"""
from torch import nn


def _check_input(name: str, x, input_size: int) -> None:
    if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (input_size, input_size):
        raise ValueError(f"{name}: expected [N, 3, {input_size}, {input_size}], got {tuple(x.shape)}")


def _conv_bn_prelu(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.PReLU(c_out)]


class SynthNetA(nn.Module):
    """Plain conv-BN-PReLU stacks, four stride-2 stages (S -> S/16), flatten + fc + BN1d (tiny IResNet head)."""

    def __init__(self, embedding_dim: int = 128, input_size: int = 64, width: int = 32, dropout: float = 0.0):
        super().__init__()
        if input_size % 16 or input_size < 16:
            raise ValueError(f"SynthNetA: input_size={input_size} must be a multiple of 16 (four stride-2 stages)")
        self.input_size = input_size
        c = [width, width, 2 * width, 4 * width, 4 * width]  # channels after the stem and each stage
        layers = _conv_bn_prelu(3, c[0], 1)
        for c_in, c_out in zip(c[:-1], c[1:]):
            layers += _conv_bn_prelu(c_in, c_out, 2) + _conv_bn_prelu(c_out, c_out, 1)
        self.features = nn.Sequential(*layers)
        side = input_size // 16
        self.head = nn.Sequential(nn.BatchNorm2d(c[-1]), nn.Dropout(dropout), nn.Flatten(),
                                  nn.Linear(c[-1] * side * side, embedding_dim), nn.BatchNorm1d(embedding_dim))

    def forward(self, x):
        _check_input("SynthNetA", x, self.input_size)
        return self.head(self.features(x))  # [N, C, S/16, S/16] -> [N, D]


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, depthwise 3x3 (maybe stride 2), 1x1 linear projection; a skip
    connection when the shape is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int, expand: int = 4):
        super().__init__()
        hidden = c_in * expand
        self.skip = stride == 1 and c_in == c_out
        self.block = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.SiLU(),
            nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return x + self.block(x) if self.skip else self.block(x)


class SynthNetB(nn.Module):
    """Depthwise-separable inverted residual blocks, S -> S/16, global average pooling + fc + BN1d."""

    def __init__(self, embedding_dim: int = 128, input_size: int = 64, width: int = 24, expand: int = 4):
        super().__init__()
        if input_size % 16 or input_size < 16:
            raise ValueError(f"SynthNetB: input_size={input_size} must be a multiple of 16 (four stride-2 stages)")
        self.input_size = input_size
        c = [width, 2 * width, 3 * width, 4 * width]  # channels at S/2, S/4, S/8, S/16
        layers = [nn.Conv2d(3, c[0], 3, 2, 1, bias=False), nn.BatchNorm2d(c[0]), nn.SiLU(),  # S/2
                  InvertedResidual(c[0], c[0], 1, expand=1)]  # at full width, expansion would cost the most
        for c_in, c_out in zip(c[:-1], c[1:]):
            layers += [InvertedResidual(c_in, c_out, 2, expand), InvertedResidual(c_out, c_out, 1, expand)]
        layers += [nn.Conv2d(c[-1], 8 * width, 1, bias=False), nn.BatchNorm2d(8 * width), nn.SiLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * width, embedding_dim),
                                  nn.BatchNorm1d(embedding_dim))

    def forward(self, x):
        _check_input("SynthNetB", x, self.input_size)
        return self.head(self.features(x))  # [N, 8 width, S/16, S/16] -> [N, D]


# Registry: architecture name (as stored in checkpoints and given to `leakguard matcher train --arch`) -> class.
ARCHS = {"synth": SynthNetA, "synth_b": SynthNetB}


def build_net(arch: str, embedding_dim: int = 128, input_size: int = 64, **kwargs) -> nn.Module:
    """A fresh network of architecture `arch` (a key of ARCHS)."""
    if arch not in ARCHS:
        raise ValueError(f"arch={arch!r}: expected one of {', '.join(ARCHS)}")
    return ARCHS[arch](embedding_dim=embedding_dim, input_size=input_size, **kwargs)

# What a synth matcher checkpoint holds (torch.save of plain data, loaded with weights_only=True):
#   format       FORMAT
#   arch         a key of ARCHS
#   net_kwargs   {"embedding_dim", "input_size", ...} for build_net
#   embedding_dim, input_size   D and S, repeated for readers that do not build the net
#   state_dict   the network's parameters and buffers
#   summary      how it was trained: data, settings, loss, accuracy, seconds
FORMAT = "leakguard.synth_matcher.v1"
