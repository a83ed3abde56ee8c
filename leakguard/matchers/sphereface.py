"""SphereFace embeddings (Liu et al. 2017) from the sphere20a weights of clcarwin/sphereface_pytorch."""
import numpy as np
import torch

from leakguard.matchers import align
from leakguard.matchers.nets import weight_file
from leakguard.matchers.nets.sphereface import Sphere20a
from leakguard.matchers.torch_matcher import TorchMatcher

SOURCE = ("github.com/clcarwin/sphereface_pytorch: model/sphere20a_20171020.7z in the repository "
          "(unpack it to sphere20a_20171020.pth)")

# SphereFace's 96 x 112 (W x H) crop template (the port's lfw_eval.py), OpenCV convention.
SPHEREFACE_96x112 = np.array([[30.2946, 51.6963], [65.5318, 51.5014], [48.0252, 71.7366],
                              [33.5493, 92.3655], [62.7299, 92.2041]], dtype=np.float64)


class SphereFace(TorchMatcher):
    """SphereFace-20 on the 112 x 96 (H x W) five-point crop. The port reads images with OpenCV, so the
    network takes BGR, scaled by (x - 127.5) / 128; the embedding is fc5.

    weights: sphere20a_20171020.pth (a plain state dict); None only with allow_random=True (tests).
    """

    name = "sphereface"
    input_size = (112, 96)
    template = align.centred(SPHEREFACE_96x112)

    def __init__(self, weights=None, device="cpu", batch_size: int = 64, alignment: str = "ffhq",
                 detector=None, allow_random: bool = False):
        state, path = weight_file.open_weights(self.name, weights, allow_random,
                                               "the sphere20a weights sphere20a_20171020.pth", SOURCE)
        # fc6 (the training classifier) is sized by the file: 10574 CASIA-WebFace identities when released.
        classes = 10574 if state is None else (state["fc6.weight"].shape[-1] if "fc6.weight" in state else None)
        net = weight_file.build(lambda: Sphere20a(num_classes=classes), state, path, self.name)
        super().__init__(net, device=device, batch_size=batch_size, alignment=alignment, detector=detector)
        self._weights_id = weight_file.fingerprint(path)

    def normalize(self, crops: torch.Tensor) -> torch.Tensor:
        # [n, 3, 112, 96] RGB in [-1, 1] -> BGR, (x255 - 127.5) / 128 with x255 = (x + 1) * 127.5
        return crops.flip(1) * (127.5 / 128)

    @property
    def embedding_dim(self) -> int:
        return 512

    @property
    def version(self) -> str:
        return f"{self.name}-sphere20a-{self._weights_id}-{self.alignment}"
