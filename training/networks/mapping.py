"""The StyleGAN2 mapping network (Karras et al. 2020): z (and a class label) through an MLP to w. The
generator maps latents with it; the conditional discriminator embeds labels with it.

Constructor arguments and state_dict names follow the official StyleGAN2-ADA MappingNetwork.
"""
import torch
from torch import nn

from training.networks.layers import FullyConnectedLayer, normalize_2nd_moment


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ c [N, c_dim]) -> w [N, w_dim] or ws [N, num_ws, w_dim]; tracks the moving
    average w_avg used by the truncation trick w' = w_avg + psi (w - w_avg)."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        self.num_ws = num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta

        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]

        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                        lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None, truncation_psi: float = 1,
                truncation_cutoff: int | None = None, skip_w_avg_update: bool = False,
                update_emas: bool | None = None) -> torch.Tensor:
        """`update_emas` (StyleGAN3-repo name) overrides the default: w_avg is updated in training mode
        unless `skip_w_avg_update`."""
        x = None
        dtype = next(self.parameters(), torch.empty(0)).dtype  # float32 unless the network was cast
        if self.z_dim > 0:
            _check_2d(z, self.z_dim, "z")
            x = normalize_2nd_moment(z.to(dtype))
        if self.c_dim > 0:
            _check_2d(c, self.c_dim, "c")
            y = normalize_2nd_moment(self.embed(c.to(dtype)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)

        update = (self.training and not skip_w_avg_update) if update_emas is None else update_emas
        if update and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))

        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs w_avg, which this mapping network does not track (w_avg_beta=None)")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                # Truncate only the first `truncation_cutoff` ws (coarse styles).
                keep = torch.arange(self.num_ws, device=x.device) >= truncation_cutoff
                x = torch.where(keep[None, :, None], x, self.w_avg.lerp(x, truncation_psi))
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


def _check_2d(t: torch.Tensor | None, dim: int, name: str) -> None:
    if t is None or t.ndim != 2 or t.shape[1] != dim:
        shape = None if t is None else tuple(t.shape)
        raise ValueError(f"mapping network: {name} must have shape [N, {dim}], got {shape}")
