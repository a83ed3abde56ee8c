"""ArcFace embeddings (Deng et al. 2019) from an InsightFace arcface_torch IResNet backbone.pth."""
import torch

from leakguard.matchers import align
from leakguard.matchers.nets import weight_file
from leakguard.matchers.nets.iresnet import LAYERS, IResNet, depths_in
from leakguard.matchers.torch_matcher import TorchMatcher

SOURCE = ("the arcface_torch model zoo linked from the README of recognition/arcface_torch in "
          "github.com/deepinsight/insightface (e.g. ms1mv3_arcface_r50_fp16/backbone.pth)")


class ArcFaceTorch(TorchMatcher):
    """IResNet-18/34/50/100 on InsightFace's 112 x 112 five-point crop, RGB scaled to [-1, 1]
    ((x / 255 - 0.5) / 0.5, which is the matcher's own pixel range, so `normalize` is the identity).

    weights: a released backbone.pth (a plain state dict); None only with allow_random=True (tests).
    arch: 'r18', 'r34', 'r50' or 'r100', the depth the file was trained with; None: read from the
    file's keys (r50 for random weights).
    """

    name = "arcface_torch"
    input_size = (112, 112)
    template = align.centred(align.ARCFACE_112)

    def __init__(self, weights=None, device="cpu", batch_size: int = 64, alignment: str = "ffhq",
                 detector=None, arch: str | None = None, allow_random: bool = False):
        if arch is not None and arch not in LAYERS:
            raise ValueError(f"matcher {self.name!r}: arch={arch!r}; expected one of {', '.join(LAYERS)}")
        state, path = weight_file.open_weights(self.name, weights, allow_random,
                                               f"an arcface_torch IResNet ({arch or 'r18, r34, r50 or r100'}) "
                                               "backbone.pth", SOURCE)
        if arch is None:  # read from the file; one of no released depth fails the load below, listing keys
            arch = (_arch_of(state) if state is not None else None) or "r50"
        hint = _arch_hint(state, arch) if state is not None else ""
        net = weight_file.build(lambda: IResNet(LAYERS[arch]), state, path, self.name, hint)
        super().__init__(net, device=device, batch_size=batch_size, alignment=alignment, detector=detector)
        self.arch = arch
        self._weights_id = weight_file.fingerprint(path)

    @property
    def embedding_dim(self) -> int:
        return 512

    @property
    def version(self) -> str:
        return f"{self.name}-{self.arch}-{self._weights_id}-{self.alignment}"


def _arch_of(state: dict[str, torch.Tensor]) -> str | None:
    """The released depth whose blocks per stage the file's keys show; None for any other (the load
    then lists what does not fit)."""
    found = [a for a, layers in LAYERS.items() if layers == depths_in(state)]
    return found[0] if found else None


def _arch_hint(state: dict[str, torch.Tensor], arch: str | None) -> str:
    """Names the depth a mismatching file holds, when it is one of the released ones."""
    found = _arch_of(state)
    if found and found != arch:
        return f"The file holds an IResNet {found}: pass arch={found!r} (or leave arch unset)"
    return (f"Blocks per stage in the file: {depths_in(state)}; the released depths have "
            + ", ".join(f"{a} {layers}" for a, layers in LAYERS.items()))
