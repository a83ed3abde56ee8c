"""SphereFace-20 (Liu et al. 2017, 'sphere20a') with the module names of the PyTorch port
clcarwin/sphereface_pytorch (net_sphere.py), so its released sphere20a_20171020.pth loads with
strict=True.

    112 x 96 (H x W) BGR, (x - 127.5) / 128 -> four stages; each opens with a stride-2 conv3x3 + PReLU
    (convS_1, reluS_1) followed by residual units x + PReLU(conv(PReLU(conv(x)))) (1, 2, 4, 1 units)
    -> [N, 512, 7, 6] -> fc5 (21504 -> 512): the embedding. fc6 is the A-Softmax classifier of the
    10574 CASIA-WebFace identities, kept for strict loading.
"""
import torch
import torch.nn.functional as F
from torch import nn

# (channels, convolutions) per stage: conv S_1 plus two per residual unit.
STAGES = ((64, 3), (128, 5), (256, 9), (512, 3))
FC_HW = (7, 6)  # the last map for a 112 x 96 input


class AngleLinear(nn.Module):
    """A-Softmax's class directions, weight [in, classes] as the port stores it (transposed from
    nn.Linear). forward gives cos(theta) per class; the margin m only shapes the training loss."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        bound = 1 / in_features ** 0.5
        self.weight = nn.Parameter(torch.empty(in_features, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(self.weight, dim=0)   # [N, classes]


class Sphere20a(nn.Module):
    """The 20-layer SphereFace network; returns fc5, the un-normalised 512-d embedding.
    `num_classes` sizes fc6 as in the weight file (None: a file without it)."""

    def __init__(self, num_classes: int | None = 10574):
        super().__init__()
        c_in = 3
        for s, (c, n) in enumerate(STAGES, start=1):
            for i in range(1, n + 1):
                setattr(self, f"conv{s}_{i}", nn.Conv2d(c_in if i == 1 else c, c, 3, 2 if i == 1 else 1, 1))
                setattr(self, f"relu{s}_{i}", nn.PReLU(c))
            c_in = c
        self.fc5 = nn.Linear(c_in * FC_HW[0] * FC_HW[1], 512)
        self.fc6 = AngleLinear(512, num_classes) if num_classes else None

    def _unit(self, x: torch.Tensor, s: int, i: int) -> torch.Tensor:
        conv, relu = getattr(self, f"conv{s}_{i}"), getattr(self, f"relu{s}_{i}")
        return relu(conv(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, 112, 96):
            raise ValueError(f"Sphere20a: expected input [N, 3, 112, 96], got {tuple(x.shape)}")
        for s, (_, n) in enumerate(STAGES, start=1):
            x = self._unit(x, s, 1)                                  # halves H and W
            for i in range(2, n, 2):                                 # residual units: convs (i, i + 1)
                x = x + self._unit(self._unit(x, s, i), s, i + 1)
        return self.fc5(x.flatten(1))                                # [N, 512, 7, 6] -> [N, 512]
