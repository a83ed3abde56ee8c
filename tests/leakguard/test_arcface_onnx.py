"""ArcFaceOnnx: a small torch CNN exported to ONNX and loaded through insightface's own get_model gives
the torch model's embeddings on the same aligned crops; the input is what InsightFace's get_feat feeds;
model packs resolve without downloading; missing files are named."""
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leakguard.matchers import align
from leakguard.matchers.weights import WeightsMissing
from tests.leakguard import faces

pytest.importorskip("insightface")
pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
from leakguard.matchers.arcface_onnx import ArcFaceOnnx, arcface_template  # noqa: E402


def small_net(out_dim: int = 64, size: int = 112) -> nn.Module:
    """[N, 3, size, size] -> [N, out_dim]: three stride-2 convolutions and a linear layer."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.PReLU(8), nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16),
                        nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.Flatten(), nn.Linear(16 * (size // 8) ** 2, out_dim))
    with torch.no_grad():
        net[3].running_mean.normal_()
        net[3].running_var.uniform_(0.5, 2)
    return net.eval()


def export(net: nn.Module, path, size: int = 112, batch: int = 1):
    """A static [batch, 3, size, size] -> [batch, D] graph. The TorchScript exporter (dynamo=False):
    torch 2.13's default exporter needs onnxscript, which the project does not install."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # the TorchScript exporter is deprecated
        torch.onnx.export(net, (torch.zeros(batch, 3, size, size),), str(path), dynamo=False,
                          input_names=["data"], output_names=["fc1"], opset_version=17)
    return path


@pytest.fixture(scope="module")
def net():
    return small_net()


@pytest.fixture(scope="module")
def model_file(net, tmp_path_factory):
    return export(net, tmp_path_factory.mktemp("arcface") / "small.onnx")


def test_loads_through_insightface_as_arcface(model_file):
    import insightface
    m = ArcFaceOnnx(model_file, alignment="none")
    assert isinstance(m.model, insightface.model_zoo.ArcFaceONNX)
    assert m.model.input_mean == 127.5 and m.model.input_std == 127.5
    assert m.embedding_dim == 64 and m.input_size == (112, 112) and m.model_batch == 1
    assert m.providers == ["CPUExecutionProvider"] and not m.differentiable
    assert m.version == "arcface:small.onnx:none"


def test_embeddings_equal_the_torch_model(net, model_file):
    x = torch.rand(3, 3, 112, 112) * 2 - 1                  # three images through a batch-1 graph
    e = ArcFaceOnnx(model_file, alignment="none", batch_size=2).embed(x)
    # InsightFace's default normalisation, (RGB - 127.5) / 127.5, is the [-1, 1] image itself.
    expected = F.normalize(net(x), dim=1)
    assert e.shape == (3, 64) and e.dtype == torch.float32
    torch.testing.assert_close(e, expected, rtol=0, atol=1e-5)


def test_input_is_what_insightface_get_feat_feeds(model_file):
    """On uint8 crops InsightFace's own get_feat (BGR images, cv2.dnn.blobFromImages) and this matcher
    agree: same colour order, same mean and std."""
    m = ArcFaceOnnx(model_file, alignment="none")
    x = torch.randint(0, 256, [2, 3, 112, 112], dtype=torch.uint8)
    bgr = [np.ascontiguousarray(i.permute(1, 2, 0).numpy()[:, :, ::-1]) for i in x]
    expected = np.concatenate([m.model.get_feat(b) for b in bgr])
    got = m.embed_batch(x.float() / 127.5 - 1)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-5)


def test_mxnet_style_graph_gets_raw_pixels(net, tmp_path):
    """InsightFace feeds 0..255 to graphs that start with Sub and Mul nodes (its MXNet exports normalise
    inside); the matcher follows its decision."""
    path = export(net, tmp_path / "mx.onnx")
    graph = onnx.load(str(path))
    graph.graph.node[0].name, graph.graph.node[1].name = "_minus0", "_mul0"
    onnx.save(graph, str(path))
    m = ArcFaceOnnx(path, alignment="none")
    assert m.model.input_mean == 0.0 and m.model.input_std == 1.0
    x = torch.rand(1, 3, 112, 112) * 2 - 1
    torch.testing.assert_close(m.embed(x), F.normalize(net((x + 1) * 127.5), dim=1), rtol=0, atol=1e-5)


def test_ffhq_alignment_warps_onto_the_template(net, model_file):
    x = torch.rand(2, 3, 160, 160) * 2 - 1
    template = align.centred(align.ARCFACE_112)
    crops = align.warp(x, align.ffhq_to_template(160, 160, template), (112, 112))
    e = ArcFaceOnnx(model_file).embed(x)                     # alignment='ffhq' by default
    torch.testing.assert_close(e, F.normalize(net(crops), dim=1), rtol=0, atol=1e-5)


def test_detect_alignment_on_a_photo(net, model_file):
    pytest.importorskip("dlib")
    from leakguard.matchers.landmarks import DlibLandmarks
    photo = faces.as_batch(faces.astronaut())
    m = ArcFaceOnnx(model_file, alignment="detect")          # DlibLandmarks by default
    assert isinstance(m.detector, DlibLandmarks)
    x = photo.float() / 127.5 - 1
    A = align.umeyama(m.detector(photo)[0], align.centred(align.ARCFACE_112))
    expected = F.normalize(net(align.warp(x, A, (112, 112))), dim=1)
    torch.testing.assert_close(m.embed(photo), expected, rtol=0, atol=1e-5)


def test_template_follows_insightface_estimate_norm():
    from insightface.utils import face_align
    for size in (112, 128, 224, 256):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # scikit-image deprecates the call it makes
            M = face_align.estimate_norm(align.ARCFACE_112.astype(np.float32), size)
        expected = M @ np.r_[align.ARCFACE_112.T, np.ones([1, 5])]   # where it sends its own 112 template
        np.testing.assert_allclose(arcface_template(size), expected.T + 0.5, atol=1e-3)


def test_model_pack_folder_and_name_resolve_offline(net, tmp_path):
    """A pack folder under root/models holding a recognition model among others: the pack name finds it
    without a download (the session's network guard would raise on one)."""
    pack = tmp_path / "models" / "mypack"
    pack.mkdir(parents=True)
    export(small_net(8, 64), pack / "zz_attribute.onnx", size=64)   # a model insightface does not route to ArcFace
    export(net, pack / "recognition.onnx")
    for weights in ("mypack", pack):
        m = ArcFaceOnnx(weights, alignment="none", root=tmp_path)
        assert m.version == "arcface:recognition.onnx:none" and m.embedding_dim == 64


def test_missing_models_name_the_file(tmp_path):
    with pytest.raises(WeightsMissing, match="nothing.onnx"):
        ArcFaceOnnx(tmp_path / "nothing.onnx")
    needed = tmp_path / "models" / "buffalo_l" / "w600k_r50.onnx"
    for weights in ("buffalo_l", None):                       # None is buffalo_l
        with pytest.raises(WeightsMissing, match=re.escape(str(needed)) + ".*ensure_available"):
            ArcFaceOnnx(weights, root=tmp_path)
    with pytest.raises(WeightsMissing, match="no recognition model"):
        (tmp_path / "empty").mkdir()
        export(small_net(8, 64), tmp_path / "empty" / "other.onnx", size=64)
        ArcFaceOnnx(tmp_path / "empty")
