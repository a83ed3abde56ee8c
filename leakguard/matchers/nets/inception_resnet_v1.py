"""Inception-ResNet-v1 (Szegedy et al. 2017) as FaceNet embedding network (Schroff et al. 2015), in
facenet-pytorch's layout: its module names, so the released state dicts converted from David
Sandberg's TensorFlow models (20180402-114759-vggface2.pt, 20180408-102900-casia-webface.pt) load
with strict=True.

    160 x 160 RGB, (x - 127.5) / 128 -> stem (conv2d_1a .. conv2d_4b) -> 5 x Block35 (scale 0.17)
    -> Mixed_6a -> 10 x Block17 (0.10) -> Mixed_7a -> 5 x Block8 (0.20) -> Block8 (1.0, no ReLU)
    -> global average pool -> last_linear (1792 -> 512, no bias) -> last_bn: the 512-d embedding.

The files also carry the training classifier `logits` (512 -> 8631 VGGFace2 or 10575 CASIA-WebFace
identities); it is kept for strict loading and unused by the embedding.
"""
import torch
from torch import nn

_EPS = 1e-3  # TensorFlow's BatchNorm epsilon, which the converted statistics assume


class BasicConv2d(nn.Module):
    """conv (no bias) -> BN -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel, stride: int, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=_EPS)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class _Residual(nn.Module):
    """out = act(x + scale * conv2d(cat(branches(x)))): the residual Inception blocks 35, 17 and 8."""

    def __init__(self, scale: float, activate: bool = True):
        super().__init__()
        self.scale = scale
        self.activate = activate

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.branch0(x), self.branch1(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.scale * self.conv2d(torch.cat(self.branches(x), 1))
        return torch.relu(y) if self.activate else y


class Block35(_Residual):
    """Inception-ResNet-A on [N, 256, 17, 17]."""

    def __init__(self, scale: float = 1.0):
        super().__init__(scale)
        self.branch0 = BasicConv2d(256, 32, 1, 1)
        self.branch1 = nn.Sequential(BasicConv2d(256, 32, 1, 1), BasicConv2d(32, 32, 3, 1, 1))
        self.branch2 = nn.Sequential(BasicConv2d(256, 32, 1, 1), BasicConv2d(32, 32, 3, 1, 1),
                                     BasicConv2d(32, 32, 3, 1, 1))
        self.conv2d = nn.Conv2d(96, 256, 1, 1)

    def branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.branch0(x), self.branch1(x), self.branch2(x)]


class Block17(_Residual):
    """Inception-ResNet-B on [N, 896, 8, 8]."""

    def __init__(self, scale: float = 1.0):
        super().__init__(scale)
        self.branch0 = BasicConv2d(896, 128, 1, 1)
        self.branch1 = nn.Sequential(BasicConv2d(896, 128, 1, 1), BasicConv2d(128, 128, (1, 7), 1, (0, 3)),
                                     BasicConv2d(128, 128, (7, 1), 1, (3, 0)))
        self.conv2d = nn.Conv2d(256, 896, 1, 1)


class Block8(_Residual):
    """Inception-ResNet-C on [N, 1792, 3, 3]; the last one has no ReLU."""

    def __init__(self, scale: float = 1.0, activate: bool = True):
        super().__init__(scale, activate)
        self.branch0 = BasicConv2d(1792, 192, 1, 1)
        self.branch1 = nn.Sequential(BasicConv2d(1792, 192, 1, 1), BasicConv2d(192, 192, (1, 3), 1, (0, 1)),
                                     BasicConv2d(192, 192, (3, 1), 1, (1, 0)))
        self.conv2d = nn.Conv2d(384, 1792, 1, 1)


class Mixed_6a(nn.Module):
    """Reduction-A: [N, 256, 17, 17] -> [N, 384 + 256 + 256 = 896, 8, 8]."""

    def __init__(self):
        super().__init__()
        self.branch0 = BasicConv2d(256, 384, 3, 2)
        self.branch1 = nn.Sequential(BasicConv2d(256, 192, 1, 1), BasicConv2d(192, 192, 3, 1, 1),
                                     BasicConv2d(192, 256, 3, 2))
        self.branch2 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class Mixed_7a(nn.Module):
    """Reduction-B: [N, 896, 8, 8] -> [N, 384 + 256 + 256 + 896 = 1792, 3, 3]."""

    def __init__(self):
        super().__init__()
        self.branch0 = nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 384, 3, 2))
        self.branch1 = nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 256, 3, 2))
        self.branch2 = nn.Sequential(BasicConv2d(896, 256, 1, 1), BasicConv2d(256, 256, 3, 1, 1),
                                     BasicConv2d(256, 256, 3, 2))
        self.branch3 = nn.MaxPool2d(3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class InceptionResnetV1(nn.Module):
    """facenet-pytorch's InceptionResnetV1; `num_classes` sizes the `logits` layer of the weight file
    (None: a file without it). Returns the un-normalised 512-d embedding."""

    def __init__(self, num_classes: int | None = None):
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32, 3, 2)
        self.conv2d_2a = BasicConv2d(32, 32, 3, 1)
        self.conv2d_2b = BasicConv2d(32, 64, 3, 1, 1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3, 1)
        self.conv2d_4b = BasicConv2d(192, 256, 3, 2)
        self.repeat_1 = nn.Sequential(*[Block35(scale=0.17) for _ in range(5)])
        self.mixed_6a = Mixed_6a()
        self.repeat_2 = nn.Sequential(*[Block17(scale=0.10) for _ in range(10)])
        self.mixed_7a = Mixed_7a()
        self.repeat_3 = nn.Sequential(*[Block8(scale=0.20) for _ in range(5)])
        self.block8 = Block8(activate=False)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.6)  # training only; identity in eval
        self.last_linear = nn.Linear(1792, 512, bias=False)
        self.last_bn = nn.BatchNorm1d(512, eps=_EPS)
        self.logits = nn.Linear(512, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[2:]) < 75:
            raise ValueError(f"InceptionResnetV1: expected input [N, 3, H, W] with H, W >= 75 (trained at 160), "
                             f"got {tuple(x.shape)}")
        x = self.maxpool_3a(self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x))))   # [N, 64, 38, 38]
        x = self.conv2d_4b(self.conv2d_4a(self.conv2d_3b(x)))                     # [N, 256, 17, 17]
        x = self.mixed_6a(self.repeat_1(x))                                       # [N, 896, 8, 8]
        x = self.mixed_7a(self.repeat_2(x))                                       # [N, 1792, 3, 3]
        x = self.avgpool_1a(self.block8(self.repeat_3(x)))                        # [N, 1792, 1, 1]
        return self.last_bn(self.last_linear(self.dropout(x).flatten(1)))        # [N, 512]
