"""IResNet, the ArcFace backbone (Deng et al. 2019) as InsightFace's arcface_torch defines it, with its
module names so the released backbone.pth files load with strict=True.

    112 x 112 RGB, (x / 255 - 0.5) / 0.5 -> conv3x3, BN, PReLU -> four stages of IBasicBlock (the first
    block of each halves the resolution: 112 -> 56 -> 28 -> 14 -> 7) -> BN -> fc (512 * 7 * 7 -> 512)
    -> BatchNorm1d 'features': the 512-d embedding.
"""
import torch
from torch import nn

# Blocks per stage (layer1..layer4) of the released depths.
LAYERS = {"r18": (2, 2, 2, 2), "r34": (3, 4, 6, 3), "r50": (3, 4, 14, 3), "r100": (3, 13, 30, 3)}
WIDTHS = (64, 128, 256, 512)
FC_SIDE = 7  # the last stage's map is 7 x 7 for a 112 x 112 input; fc flattens it


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5)


class IBasicBlock(nn.Module):
    """The 'improved' residual unit: BN, conv3x3, BN, PReLU, conv3x3 (carries the stride), BN, plus
    the shortcut, with no activation after the sum."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.bn1 = _bn(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
        self.bn2 = _bn(c_out)
        self.prelu = nn.PReLU(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride, 1, bias=False)
        self.bn3 = _bn(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:  # the shortcut must match the residual's shape
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), _bn(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [N, c_in, H, W] -> [N, c_out, H / stride, W / stride]
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    """arcface_torch's IResNet with `layers` blocks per stage; returns the un-normalised embedding."""

    def __init__(self, layers: tuple[int, int, int, int], num_features: int = 512):
        super().__init__()
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = _bn(WIDTHS[0])
        self.prelu = nn.PReLU(WIDTHS[0])
        c = WIDTHS[0]
        for i, (width, depth) in enumerate(zip(WIDTHS, layers)):
            blocks = [IBasicBlock(c, width, stride=2)] + [IBasicBlock(width, width) for _ in range(depth - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            c = width
        self.bn2 = _bn(c)
        self.dropout = nn.Dropout(p=0.0)  # the released models train with dropout 0; kept for the name
        self.fc = nn.Linear(c * FC_SIDE * FC_SIDE, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 112, 112):
            raise ValueError(f"IResNet: expected input [N, 3, 112, 112], got {tuple(x.shape)}")
        x = self.prelu(self.bn1(self.conv1(x)))                            # [N, 64, 112, 112]
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))           # [N, 512, 7, 7]
        x = self.dropout(torch.flatten(self.bn2(x), 1))                     # [N, 25088]
        return self.features(self.fc(x))                                    # [N, 512]


def depths_in(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    """Blocks per stage in an IResNet state dict (from its 'layerS.B.' keys), for naming the arch."""
    depth = {}
    for key in state:
        parts = key.split(".")
        if len(parts) > 2 and parts[0].startswith("layer") and parts[1].isdigit():
            depth[parts[0]] = max(depth.get(parts[0], 0), int(parts[1]) + 1)
    return tuple(depth.get(f"layer{i}", 0) for i in range(1, 5))
