"""InsightFace's ArcFace recognition models (.onnx) behind the matcher interface, run by onnxruntime.

    m = ArcFaceOnnx("buffalo_l")                       # ~/.insightface/models/buffalo_l/w600k_r50.onnx
    m = ArcFaceOnnx("/models/w600k_r50.onnx", device="cuda", alignment="detect")
    e = m.embed(images)                                # [N, 512] unit rows

The model is loaded by insightface.model_zoo.get_model, so it is fed exactly as InsightFace feeds it
(its ArcFaceONNX decides input_mean and input_std from the graph); this class only aligns: the same
ffhq | none | detect alignments as TorchMatcher, onto InsightFace's 112 x 112 template. Nothing is
downloaded: a model pack InsightFace would fetch must already be on disk.
"""
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from leakguard.matchers import align
from leakguard.matchers.torch_matcher import TorchMatcher
from leakguard.matchers.weights import WeightsMissing

PIP_HINT = "pip install insightface onnxruntime onnx (or: pip install -e '.[matchers]')"
# The recognition model in each of InsightFace's model packs.
PACKS = {"buffalo_l": "w600k_r50.onnx", "buffalo_m": "w600k_r50.onnx", "buffalo_s": "w600k_mbf.onnx",
         "buffalo_sc": "w600k_mbf.onnx", "antelopev2": "glintr100.onnx"}


def import_insightface():
    try:
        import insightface.model_zoo
        import onnxruntime
    except ImportError as e:
        raise ImportError(f"the arcface matcher needs insightface and onnxruntime: {PIP_HINT}") from e
    return insightface.model_zoo, onnxruntime


def arcface_template(size: int) -> np.ndarray:
    """InsightFace's template for a size x size crop (its face_align.estimate_norm: scaled for multiples
    of 112, scaled and shifted 8/128 of the side right for multiples of 128), pixel centres at i + 0.5."""
    if size % 112 == 0:
        points = align.ARCFACE_112 * (size / 112)
    elif size % 128 == 0:
        points = align.ARCFACE_112 * (size / 128) + [8.0 * size / 128, 0.0]
    else:
        raise ValueError(f"matcher arcface: input size {size} is neither a multiple of 112 nor of 128 "
                         "(InsightFace has no template for it)")
    return align.centred(points)


def _pack_missing(name: str, folder: Path) -> WeightsMissing:
    needed = folder / PACKS.get(name, "<recognition model>.onnx")
    return WeightsMissing(
        f"matcher 'arcface': InsightFace model pack {name!r} is not on this machine: {needed} not found. "
        f"On a machine with internet, `python -c \"from insightface.utils.storage import ensure_available; "
        f"ensure_available('models', '{name}')\"` downloads it to ~/.insightface/models/{name}/; copy that "
        f"folder here, or pass the .onnx file's path as weights=...")


def load_recognition_model(weights: str | Path, root: str | Path, providers: list, provider_options: list):
    """InsightFace's ArcFaceONNX for `weights`: an .onnx file, a model-pack folder, or the name of a
    pack under root/models. Never downloads."""
    model_zoo, _ = import_insightface()
    path = Path(weights).expanduser()
    if path.suffix == ".onnx":
        if not path.is_file():
            raise WeightsMissing(f"matcher 'arcface': weights file not found: {path}. It needs an InsightFace "
                                 "recognition model (.onnx), e.g. w600k_r50.onnx from the buffalo_l pack")
        files = [path]
    else:
        folder = path if path.is_dir() else Path(root).expanduser() / "models" / str(weights)
        if not folder.is_dir():
            raise _pack_missing(path.name, folder)
        if getattr(model_zoo, "has_model_package_manifest", lambda _: False)(str(folder)):
            return model_zoo.get_model(str(folder), model_task="recognition", providers=providers,
                                       provider_options=provider_options)
        files = sorted(folder.glob("*.onnx"), key=lambda f: (f.name != PACKS.get(folder.name), f.name))
        if not files:
            raise _pack_missing(folder.name, folder)
    for f in files:  # a pack holds detectors and landmark models too: keep what InsightFace routes to ArcFace
        model = model_zoo.get_model(str(f), providers=providers, provider_options=provider_options)
        if isinstance(model, model_zoo.ArcFaceONNX):
            return model
    raise WeightsMissing(f"matcher 'arcface': no recognition model among {[str(f) for f in files]}: InsightFace "
                         "routes a model to ArcFace only with one [N, 3, S, S] input (S >= 112, a multiple of "
                         "16) and one output")


class ArcFaceOnnx(TorchMatcher):
    """ArcFace (Deng et al. 2019, additive angular margin) as InsightFace ships it: an ONNX ResNet run by
    onnxruntime (CUDAExecutionProvider where device is cuda and onnxruntime has it; else the CPU).
    Not differentiable. alignment='detect' uses leakguard.matchers.landmarks.DlibLandmarks unless a
    detector is given."""

    name = "arcface"
    differentiable = False

    def __init__(self, weights: str | Path | None = None, device="cpu", batch_size: int = 64,
                 alignment: str = "ffhq", detector=None, root: str | Path = "~/.insightface"):
        """weights: an .onnx file, a model-pack folder, or a pack name under root/models; None: buffalo_l."""
        if alignment == "detect" and detector is None:
            from leakguard.matchers.landmarks import DlibLandmarks
            detector = DlibLandmarks()
        # The network runs in onnxruntime; the torch side (an identity) only aligns.
        super().__init__(nn.Identity(), device=device, batch_size=batch_size, alignment=alignment, detector=detector)
        providers, options = self._providers()
        self.model = load_recognition_model("buffalo_l" if weights is None else weights, root, providers, options)
        width, height = self.model.input_size
        if width != height:
            raise ValueError(f"matcher arcface: {self.model.model_file} takes {height} x {width} crops; "
                             "InsightFace's templates are square")
        self.input_size = (height, width)
        self.template = arcface_template(width)
        self.providers = self.model.session.get_providers()
        batch = self.model.input_shape[0]
        self.model_batch = batch if isinstance(batch, int) and batch > 0 else None  # a fixed batch size, if any
        self._dim = int(self.model.output_shape[-1])

    def _providers(self) -> tuple[list, list]:
        """onnxruntime's providers for self.device: CUDA (with the device index) then CPU, or the CPU."""
        _, ort = import_insightface()
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                return ["CUDAExecutionProvider", "CPUExecutionProvider"], [{"device_id": self.device.index or 0}, {}]
            warnings.warn(f"matcher arcface: device={self.device} but this onnxruntime has no CUDAExecutionProvider "
                          "(pip install onnxruntime-gpu); running on the CPU")
        return ["CPUExecutionProvider"], [{}]

    @property
    def embedding_dim(self) -> int:
        return self._dim

    @property
    def version(self) -> str:
        return f"arcface:{Path(self.model.model_file).name}:{self.alignment}"

    def blob(self, crops: torch.Tensor) -> np.ndarray:
        """[n, 3, S, S] RGB crops in [-1, 1] -> float32 [n, 3, S, S] RGB in 0..255, what ArcFaceONNX.forward
        takes (cv2.dnn.blobFromImages in its get_feat swaps BGR to RGB and leaves pixels in 0..255).
        The crops stay unrounded; a model with a uint8 input gets them rounded."""
        x = ((crops.detach().float() + 1) * 127.5).cpu().numpy()
        if getattr(self.model, "input_dtype", np.float32) == np.uint8:
            x = np.clip(np.round(x), 0, 255)
        return np.ascontiguousarray(x, dtype=np.float32)

    def embed_batch(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blob(self.crop(images))                               # [n, 3, S, S]
        step = self.model_batch or len(x)
        out = []
        for i in range(0, len(x), step):
            chunk = x[i:i + step]
            if self.model_batch and len(chunk) < step:  # a fixed-batch model: pad the last chunk
                chunk = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), np.float32)])
            # forward is ArcFaceONNX's own (x - input_mean) / input_std, then the session.
            out.append(self.model.forward(chunk)[:len(x) - i])
        return torch.from_numpy(np.concatenate(out).astype(np.float32))
