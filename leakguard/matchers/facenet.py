"""FaceNet embeddings (Schroff et al. 2015) from facenet-pytorch's Inception-ResNet-v1 weights."""
import numpy as np
import torch

from leakguard.matchers import align
from leakguard.matchers.nets import weight_file
from leakguard.matchers.nets.inception_resnet_v1 import InceptionResnetV1
from leakguard.matchers.torch_matcher import TorchMatcher

SOURCE = ("the release assets of github.com/timesler/facenet-pytorch (20180402-114759-vggface2.pt or "
          "20180408-102900-casia-webface.pt; InceptionResnetV1(pretrained=...) caches them under "
          "~/.cache/torch/checkpoints)")

# One published MTCNN detection, the example in the README of ipazc/mtcnn (a port of the MTCNN weights
# facenet uses): box (x, y, w, h) and its five points, of a near-frontal face.
MTCNN_EXAMPLE_BOX = np.array([277.0, 90.0, 48.0, 63.0])
MTCNN_EXAMPLE_POINTS = np.array([[291, 117], [314, 114], [303, 131], [296, 143], [313, 141]], np.float64)
MARGIN = 14  # pixels of the 160 crop; facenet-pytorch's examples use MTCNN(image_size=160, margin=14)


def _eyes_mouth(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    eyes, mouth = points[:2].mean(0), points[3:].mean(0)
    return eyes, mouth, float(np.linalg.norm(mouth - eyes))


def mtcnn_crop_template(size: int = 160, margin: int = MARGIN) -> tuple[np.ndarray, float]:
    """Where the five landmarks of an average face fall in facenet-pytorch's crop, and how much that
    crop stretches x relative to y.

    facenet-pytorch crops the MTCNN box grown so that the box fills size - margin pixels of each side,
    then resizes that to size x size, stretching x and y differently (MTCNN boxes are taller than wide).
    The box is placed on the ArcFace template face by measuring the example detection in eye-to-mouth
    units |e2m|: its top edge lies 0.96 |e2m| above the eyes, its bottom 0.41 |e2m| below the mouth, its
    width is 1.81 |e2m| centred on the face's midline (the example's eye distance is 0.873 |e2m|, the
    template's 0.866, so the face is near frontal). That box is 73.5 x 96.6 in the template's 112 px, so
    the crop scales x 1.31 times more than y. Returns ([5, 2] points, pixel centres at i + 0.5; stretch).
    """
    eyes, mouth, e2m = _eyes_mouth(MTCNN_EXAMPLE_POINTS)
    x, y, w, h = MTCNN_EXAMPLE_BOX
    top, bottom, half_width = (eyes[1] - y) / e2m, (y + h - mouth[1]) / e2m, w / 2 / e2m
    ref = align.centred(align.ARCFACE_112)
    eyes, mouth, e2m = _eyes_mouth(ref)
    midline = (eyes[0] + mouth[0]) / 2
    x0, x1 = midline - half_width * e2m, midline + half_width * e2m      # the box on the template face
    y0, y1 = eyes[1] - top * e2m, mouth[1] + bottom * e2m
    sx, sy = (size - margin) / (x1 - x0), (size - margin) / (y1 - y0)
    template = np.stack([margin / 2 + (ref[:, 0] - x0) * sx, margin / 2 + (ref[:, 1] - y0) * sy], axis=1)
    return template, sx / sy


FACENET_160, FACENET_STRETCH = mtcnn_crop_template()


class FaceNet(TorchMatcher):
    """Inception-ResNet-v1 trained by David Sandberg's facenet on VGGFace2 or CASIA-WebFace, as
    facenet-pytorch converted it: 160 x 160 RGB, fixed_image_standardization (x - 127.5) / 128.

    facenet-pytorch crops with an MTCNN box plus a margin, not a five-point template; `template` is
    where the landmarks land in that crop (`mtcnn_crop_template`: the ArcFace template face framed by an
    MTCNN box, margin 14 of 160). The crop resizes the box to a square, so faces in it are stretched
    sideways by FACENET_STRETCH; `crop` fits the similarity without the stretch and then applies it,
    which a similarity onto `template` alone could not.

    weights: one of the released .pt state dicts (its `logits` layer, 8631 or 10575 classes, is sized
    from the file); None only with allow_random=True (tests).
    """

    name = "facenet"
    input_size = (160, 160)
    template = FACENET_160
    stretch = FACENET_STRETCH

    def __init__(self, weights=None, device="cpu", batch_size: int = 64, alignment: str = "ffhq",
                 detector=None, allow_random: bool = False):
        state, path = weight_file.open_weights(self.name, weights, allow_random,
                                               "an InceptionResnetV1 state dict such as 20180402-114759-vggface2.pt",
                                               SOURCE)
        classes = state["logits.weight"].shape[0] if state is not None and "logits.weight" in state else None
        net = weight_file.build(lambda: InceptionResnetV1(num_classes=classes), state, path, self.name)
        super().__init__(net, device=device, batch_size=batch_size, alignment=alignment, detector=detector)
        self._weights_id = weight_file.fingerprint(path)

    def crop(self, images: torch.Tensor) -> torch.Tensor:
        if self.alignment == "none":
            return super().crop(images)
        K = np.diag([self.stretch, 1.0])                      # the crop's sideways stretch, about x = 0
        unstretched = self.template / np.array([self.stretch, 1.0])
        if self.alignment == "ffhq":
            A = K @ align.ffhq_to_template(images.shape[2], images.shape[3], unstretched)
        else:
            points = np.asarray(self.detector(images.detach()), np.float64)   # [n, 5, 2]
            A = np.stack([K @ align.umeyama(p, unstretched) for p in points])
        return align.warp(images, A, self.input_size)

    def normalize(self, crops: torch.Tensor) -> torch.Tensor:
        # [n, 3, 160, 160] in [-1, 1] -> (x255 - 127.5) / 128 with x255 = (x + 1) * 127.5
        return crops * (127.5 / 128)

    @property
    def embedding_dim(self) -> int:
        return 512

    @property
    def version(self) -> str:
        return f"{self.name}-inception_resnet_v1-{self._weights_id}-{self.alignment}"
