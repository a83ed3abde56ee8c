"""arcface_torch, facenet and sphereface load files in the published formats with strict=True, compute
what the published architectures compute, and pass gradients to the pixels.

The published key lists and shapes are spelled out here from the published architectures
(arcface_torch backbones/iresnet.py, facenet-pytorch models/inception_resnet_v1.py, sphereface_pytorch
net_sphere.py), independently of leakguard's modules, and checked against published parameter counts.
The forward oracles are functional re-statements of those architectures over the state dict.
"""
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from leakguard.matchers import align
from leakguard.matchers.arcface_torch import ArcFaceTorch
from leakguard.matchers.facenet import FACENET_160, FACENET_STRETCH, FaceNet
from leakguard.matchers.nets import weight_file
from leakguard.matchers.nets.iresnet import IResNet
from leakguard.matchers.nets.inception_resnet_v1 import InceptionResnetV1
from leakguard.matchers.nets.sphereface import Sphere20a
from leakguard.matchers.sphereface import SphereFace
from leakguard.matchers.weights import WeightsMissing

# ---------------------------------------------------------------- published key lists and shapes


def _conv(k, name, c_out, c_in, kh, kw=None, bias=False):
    k[f"{name}.weight"] = (c_out, c_in, kh, kw or kh)
    if bias:
        k[f"{name}.bias"] = (c_out,)


def _bn(k, name, c):
    # torch >= 0.4.1 state dicts (both released .pth/.pt files were written by such) carry the step counter
    k.update({f"{name}.weight": (c,), f"{name}.bias": (c,), f"{name}.running_mean": (c,),
              f"{name}.running_var": (c,), f"{name}.num_batches_tracked": ()})


def iresnet_keys(layers):
    k = {}
    _conv(k, "conv1", 64, 3, 3)
    _bn(k, "bn1", 64)
    k["prelu.weight"] = (64,)
    c = 64
    for s, (width, depth) in enumerate(zip((64, 128, 256, 512), layers), start=1):
        for b in range(depth):
            p, c_in = f"layer{s}.{b}", (c if b == 0 else width)
            _bn(k, f"{p}.bn1", c_in)
            _conv(k, f"{p}.conv1", width, c_in, 3)
            _bn(k, f"{p}.bn2", width)
            k[f"{p}.prelu.weight"] = (width,)
            _conv(k, f"{p}.conv2", width, width, 3)
            _bn(k, f"{p}.bn3", width)
            if b == 0:  # every stage opens with stride 2, so with a projection shortcut
                _conv(k, f"{p}.downsample.0", width, c_in, 1)
                _bn(k, f"{p}.downsample.1", width)
        c = width
    _bn(k, "bn2", 512)
    k["fc.weight"], k["fc.bias"] = (512, 512 * 7 * 7), (512,)
    _bn(k, "features", 512)
    return k


def facenet_keys(classes):
    k = {}

    def basic(name, c_in, c_out, kh, kw=None):
        _conv(k, f"{name}.conv", c_out, c_in, kh, kw)
        _bn(k, f"{name}.bn", c_out)

    for name, c_in, c_out, kernel in (("conv2d_1a", 3, 32, 3), ("conv2d_2a", 32, 32, 3), ("conv2d_2b", 32, 64, 3),
                                      ("conv2d_3b", 64, 80, 1), ("conv2d_4a", 80, 192, 3), ("conv2d_4b", 192, 256, 3)):
        basic(name, c_in, c_out, kernel)
    for i in range(5):
        p = f"repeat_1.{i}"
        basic(f"{p}.branch0", 256, 32, 1)
        basic(f"{p}.branch1.0", 256, 32, 1)
        basic(f"{p}.branch1.1", 32, 32, 3)
        basic(f"{p}.branch2.0", 256, 32, 1)
        basic(f"{p}.branch2.1", 32, 32, 3)
        basic(f"{p}.branch2.2", 32, 32, 3)
        _conv(k, f"{p}.conv2d", 256, 96, 1, bias=True)
    basic("mixed_6a.branch0", 256, 384, 3)
    basic("mixed_6a.branch1.0", 256, 192, 1)
    basic("mixed_6a.branch1.1", 192, 192, 3)
    basic("mixed_6a.branch1.2", 192, 256, 3)
    for i in range(10):
        p = f"repeat_2.{i}"
        basic(f"{p}.branch0", 896, 128, 1)
        basic(f"{p}.branch1.0", 896, 128, 1)
        basic(f"{p}.branch1.1", 128, 128, 1, 7)
        basic(f"{p}.branch1.2", 128, 128, 7, 1)
        _conv(k, f"{p}.conv2d", 896, 256, 1, bias=True)
    basic("mixed_7a.branch0.0", 896, 256, 1)
    basic("mixed_7a.branch0.1", 256, 384, 3)
    basic("mixed_7a.branch1.0", 896, 256, 1)
    basic("mixed_7a.branch1.1", 256, 256, 3)
    basic("mixed_7a.branch2.0", 896, 256, 1)
    basic("mixed_7a.branch2.1", 256, 256, 3)
    basic("mixed_7a.branch2.2", 256, 256, 3)
    for p in [f"repeat_3.{i}" for i in range(5)] + ["block8"]:
        basic(f"{p}.branch0", 1792, 192, 1)
        basic(f"{p}.branch1.0", 1792, 192, 1)
        basic(f"{p}.branch1.1", 192, 192, 1, 3)
        basic(f"{p}.branch1.2", 192, 192, 3, 1)
        _conv(k, f"{p}.conv2d", 1792, 384, 1, bias=True)
    k["last_linear.weight"] = (512, 1792)
    _bn(k, "last_bn", 512)
    k["logits.weight"], k["logits.bias"] = (classes, 512), (classes,)
    return k


SPHERE_STAGES = ((64, 3), (128, 5), (256, 9), (512, 3))


def sphere20a_keys(classes=10574):
    k, c_in = {}, 3
    for s, (c, n) in enumerate(SPHERE_STAGES, start=1):
        for i in range(1, n + 1):
            _conv(k, f"conv{s}_{i}", c, c_in if i == 1 else c, 3, bias=True)
            k[f"relu{s}_{i}.weight"] = (c,)
        c_in = c
    k["fc5.weight"], k["fc5.bias"] = (512, 512 * 7 * 6), (512,)
    k["fc6.weight"] = (512, classes)  # AngleLinear stores [in_features, classes]
    return k


def n_params(keys):
    return sum(int(np.prod(s)) for k, s in keys.items() if not re.search(r"running_|num_batches", k))


# Parameter counts as published for these models (third-party tables of arcface_torch IResNets;
# facenet-pytorch InceptionResnetV1('vggface2') is 27,910,327 with its 8631-way logits).
PUBLISHED = {
    "r18": (lambda: IResNet((2, 2, 2, 2)), iresnet_keys((2, 2, 2, 2)), 24_025_600),
    "r34": (lambda: IResNet((3, 4, 6, 3)), iresnet_keys((3, 4, 6, 3)), 34_139_328),
    "r50": (lambda: IResNet((3, 4, 14, 3)), iresnet_keys((3, 4, 14, 3)), 43_590_848),
    "r100": (lambda: IResNet((3, 13, 30, 3)), iresnet_keys((3, 13, 30, 3)), 65_156_160),
    "facenet-vggface2": (lambda: InceptionResnetV1(8631), facenet_keys(8631), 27_910_327),
    "facenet-casia": (lambda: InceptionResnetV1(10575), facenet_keys(10575), 27_910_327 + (10575 - 8631) * 513),
    "sphere20a": (lambda: Sphere20a(10574), sphere20a_keys(), None),
}


@pytest.mark.parametrize("arch", PUBLISHED)
def test_published_keys_shapes_and_parameter_counts(arch):
    build, keys, count = PUBLISHED[arch]
    with torch.device("meta"):  # no memory, no init: only names and shapes
        net = build()
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert sorted(set(keys) - set(ours)) == [] and sorted(set(ours) - set(keys)) == []
    assert ours == keys
    if count is not None:
        assert n_params(keys) == count
    if arch == "facenet-vggface2":  # published dump: 132 Conv2d, 111 BatchNorm2d
        assert sum(k.endswith("conv.weight") or k.endswith("conv2d.weight") for k in keys) == 132
        assert sum(k.endswith(".bn.running_var") for k in keys) == 111


# ---------------------------------------------------------------- files with random published tensors


def random_state(keys, seed=0):
    """Random tensors under the published keys, scaled so activations stay finite through the depth."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in keys.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(1000, dtype=torch.long)
        elif k.endswith(("logits.weight", "fc6.weight")):  # training classifiers, unused by the embedding
            out[k] = torch.zeros(shape)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) >= 2:  # conv / linear: uniform with variance 1 / fan-in
            bound = float(np.sqrt(3 / np.prod(shape[1:])))
            out[k] = torch.rand(shape, generator=g).mul_(2 * bound).sub_(bound)
        elif k.endswith("weight"):  # BN scale, PReLU slope
            out[k] = 0.5 + 0.1 * torch.randn(shape, generator=g)
        else:  # biases, running means
            out[k] = 0.1 * torch.randn(shape, generator=g)
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """One file per matcher, written as the projects wrote theirs."""
    d = tmp_path_factory.mktemp("weights")
    states = {"arcface_torch": random_state(iresnet_keys((2, 2, 2, 2)), 1),
              "facenet": random_state(facenet_keys(8631), 2),
              "sphereface": random_state(sphere20a_keys(), 3)}
    paths = {"arcface_torch": d / "backbone.pth", "facenet": d / "20180402-114759-vggface2.pt",
             "sphereface": d / "sphere20a_20171020.pth"}
    torch.save(states["arcface_torch"], paths["arcface_torch"])
    torch.save(states["facenet"], paths["facenet"])
    # the 2017 file predates torch's zip format
    torch.save(states["sphereface"], paths["sphereface"], _use_new_zipfile_serialization=False)
    return states, paths


def _bn_f(x, sd, p, eps):
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        False, 0.0, eps)


def iresnet_oracle(sd, x, layers=(2, 2, 2, 2)):
    """arcface_torch IResNet.forward over a state dict; x: [N, 3, 112, 112] already (x/255-0.5)/0.5."""
    def bn(x, p):
        return _bn_f(x, sd, p, 1e-5)

    def conv(x, p, stride=1):  # 3x3 padded by 1, 1x1 unpadded
        return F.conv2d(x, sd[f"{p}.weight"], None, stride, sd[f"{p}.weight"].shape[-1] // 2)

    x = F.prelu(bn(conv(x, "conv1"), "bn1"), sd["prelu.weight"])
    for s, depth in enumerate(layers, start=1):
        for b in range(depth):
            p, stride = f"layer{s}.{b}", (2 if b == 0 else 1)
            y = F.prelu(bn(conv(bn(x, f"{p}.bn1"), f"{p}.conv1"), f"{p}.bn2"), sd[f"{p}.prelu.weight"])
            y = bn(conv(y, f"{p}.conv2", stride), f"{p}.bn3")
            x = y + (bn(conv(x, f"{p}.downsample.0", stride), f"{p}.downsample.1") if b == 0 else x)
    x = F.linear(bn(x, "bn2").flatten(1), sd["fc.weight"], sd["fc.bias"])
    return bn(x, "features")


def facenet_oracle(sd, x):
    """facenet-pytorch InceptionResnetV1.forward (embedding before its L2 norm); x: (x255-127.5)/128."""
    def basic(x, p, stride=1, same=True):
        w = sd[f"{p}.conv.weight"]
        pad = (w.shape[2] // 2, w.shape[3] // 2) if same and stride == 1 else 0
        return F.relu(_bn_f(F.conv2d(x, w, None, stride, pad), sd, f"{p}.bn", 1e-3))

    def chain(x, p, n, last_stride=1):  # Sequential of BasicConv2d; a stride-2 conv is unpadded
        for j in range(n):
            x = basic(x, f"{p}.{j}", last_stride if j == n - 1 else 1)
        return x

    def residual(x, p, scale, block35=False, relu=True):
        # Block35: branches of 1, 2 and 3 convs; Block17 and Block8: branches of 1 and 3 convs
        parts = [basic(x, f"{p}.branch0"), chain(x, f"{p}.branch1", 2 if block35 else 3)]
        parts += [chain(x, f"{p}.branch2", 3)] if block35 else []
        y = x + scale * F.conv2d(torch.cat(parts, 1), sd[f"{p}.conv2d.weight"], sd[f"{p}.conv2d.bias"])
        return F.relu(y) if relu else y

    x = basic(basic(x, "conv2d_1a", 2), "conv2d_2a", same=False)
    x = F.max_pool2d(basic(x, "conv2d_2b"), 3, 2)
    x = basic(basic(basic(x, "conv2d_3b"), "conv2d_4a", same=False), "conv2d_4b", 2)
    for i in range(5):
        x = residual(x, f"repeat_1.{i}", 0.17, block35=True)
    x = torch.cat([basic(x, "mixed_6a.branch0", 2), chain(x, "mixed_6a.branch1", 3, 2), F.max_pool2d(x, 3, 2)], 1)
    for i in range(10):
        x = residual(x, f"repeat_2.{i}", 0.10)
    x = torch.cat([chain(x, "mixed_7a.branch0", 2, 2), chain(x, "mixed_7a.branch1", 2, 2),
                   chain(x, "mixed_7a.branch2", 3, 2), F.max_pool2d(x, 3, 2)], 1)
    for i in range(5):
        x = residual(x, f"repeat_3.{i}", 0.20)
    x = residual(x, "block8", 1.0, relu=False).mean((2, 3))
    return _bn_f(F.linear(x, sd["last_linear.weight"]), sd, "last_bn", 1e-3)


def sphere20a_oracle(sd, x):
    """sphereface_pytorch sphere20a.forward with feature=True; x: BGR (x255-127.5)/128, [N, 3, 112, 96]."""
    def unit(x, n):  # convS_1 has stride 2
        stride = 2 if n.endswith("_1") else 1
        return F.prelu(F.conv2d(x, sd[f"conv{n}.weight"], sd[f"conv{n}.bias"], stride, 1), sd[f"relu{n}.weight"])

    for s, (_, n) in enumerate(SPHERE_STAGES, start=1):
        x = unit(x, f"{s}_1")
        for i in range(2, n, 2):
            x = x + unit(unit(x, f"{s}_{i}"), f"{s}_{i + 1}")
    return F.linear(x.flatten(1), sd["fc5.weight"], sd["fc5.bias"])


# name -> (matcher class, kwargs, oracle, [-1, 1] RGB crop -> the network's published input)
CASES = {
    "arcface_torch": (ArcFaceTorch, {}, iresnet_oracle, lambda c: (((c + 1) * 127.5) / 255 - 0.5) / 0.5),
    "facenet": (FaceNet, {}, facenet_oracle, lambda c: ((c + 1) * 127.5 - 127.5) / 128),
    "sphereface": (SphereFace, {}, sphere20a_oracle, lambda c: ((c.flip(1) + 1) * 127.5 - 127.5) / 128),
}


def ffhq_like(n=2, size=256, seed=0):
    """[n, 3, size, size] smooth random images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 3, 16, 16, generator=g) * 2 - 1, size=(size, size), mode="bilinear",
                         align_corners=False)


@pytest.mark.parametrize("name", CASES)
def test_published_file_loads_strict_matches_oracle_and_passes_gradients(files, name):
    states, paths = files
    cls, kwargs, oracle, published_input = CASES[name]
    m = cls(weights=paths[name], **kwargs)   # strict=True inside
    assert not any(mod.training for mod in m.net.modules())  # BatchNorm uses the file's statistics
    assert re.fullmatch(rf"{name}-\w+-[0-9a-f]{{12}}-ffhq", m.version)
    if name == "arcface_torch":
        assert m.arch == "r18"  # read from the file's keys

    images = ffhq_like(2, seed=2).requires_grad_(True)   # [2, 3, 256, 256], FFHQ-aligned by assumption
    e = m(images)
    assert e.shape == (2, 512) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)

    # by hand: the similarity taking FFHQ's landmarks onto the template (facenet: fitted without its
    # sideways stretch, which is applied after), the warp, the published normalisation, the oracle
    template, K = np.asarray(m.template), np.eye(2)
    if name == "facenet":
        K = np.diag([FACENET_STRETCH, 1.0])
        template = template / [FACENET_STRETCH, 1.0]
    A = K @ align.umeyama(align.ffhq_landmarks(256, 256), template)
    assert np.abs(align.apply(A, align.ffhq_landmarks(256, 256)) - m.template).max() < 1e-6
    with torch.no_grad():
        want = F.normalize(oracle(states[name], published_input(align.warp(images, A, m.input_size))), dim=1)
    assert (e - want).abs().max() < 1e-4

    (g,) = torch.autograd.grad(e[0] @ torch.linspace(-1, 1, 512), images)
    assert torch.isfinite(g).all() and g[0].abs().sum() > 0
    assert g[1].abs().max() == 0  # eval mode: no batch statistics couple the images


def test_facenet_template_frames_the_face_like_an_mtcnn_crop():
    # symmetric about the crop's centre line, eyes above the centre, mouth in the lower fifth
    assert abs(FACENET_160[[0, 1, 3, 4], 0].reshape(2, 2).mean(1) - 80).max() < 0.5
    assert 60 < FACENET_160[:2, 1].mean() < 72 and 120 < FACENET_160[3:, 1].mean() < 135
    assert 1.2 < FACENET_STRETCH < 1.4  # MTCNN boxes are taller than wide


# ---------------------------------------------------------------- errors and file handling


@pytest.mark.parametrize("cls,needs,source", [(ArcFaceTorch, "backbone.pth", "insightface"),
                                              (FaceNet, "vggface2.pt", "facenet-pytorch"),
                                              (SphereFace, "sphere20a_20171020.pth", "sphereface_pytorch")])
def test_missing_weights_name_the_file_and_where_to_get_it(tmp_path, cls, needs, source):
    with pytest.raises(WeightsMissing, match=re.escape(needs)) as err:
        cls()
    assert source in str(err.value)
    with pytest.raises(WeightsMissing, match=re.escape(str(tmp_path / "nope.pth"))):
        cls(weights=tmp_path / "nope.pth")


def test_wrong_keys_are_listed_with_the_file(files, tmp_path):
    states, paths = files
    bad = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3), "fc5.weight": torch.zeros(512, 10)}, bad)
    with pytest.raises(weight_file.WeightsMismatch) as err:
        SphereFace(weights=bad)
    msg = str(err.value)
    assert str(bad) in msg and "unexpected (1): conv1.weight" in msg and "missing (61): conv1_1.weight" in msg
    assert "fc5.weight (512, 10) (network: (512, 21504))" in msg
    with pytest.raises(weight_file.WeightsMismatch, match="holds an IResNet r18: pass arch='r18'"):
        ArcFaceTorch(weights=paths["arcface_torch"], arch="r50")
    with pytest.raises(weight_file.WeightsMismatch, match=r"missing \(395\): bn1.weight.*unexpected \(1\): fc5.weight.*released depths have r18"):
        ArcFaceTorch(weights=bad)  # of no released depth: checked as r50 and its keys listed


def test_wrapped_prefixed_and_pre_0_4_files_load(files, tmp_path):
    states, _ = files
    small = {"module.a": torch.ones(2), "module.b.weight": torch.zeros(1)}
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": small, "epoch": 3}, path)
    assert list(weight_file.read_state_dict(path, "m")) == ["a", "b.weight"]
    # files written before torch 0.4.1 have no num_batches_tracked
    old = {k: v for k, v in states["arcface_torch"].items() if not k.endswith("num_batches_tracked")}
    net = weight_file.build(lambda: IResNet((2, 2, 2, 2)), old, path, "arcface_torch")
    assert torch.equal(net.fc.weight, old["fc.weight"])


def test_files_that_are_not_state_dicts_or_hold_code_are_refused(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"a": torch.ones(1), "note": "hello"}, path)
    with pytest.raises(weight_file.WeightsMismatch, match="not a state dict.*'note' holds a str; its top-level keys are a, note"):
        weight_file.read_state_dict(path, "m")
    torch.save({"f": print}, path)  # weights_only refuses to import callables
    with pytest.raises(weight_file.WeightsMismatch, match="weights-only"):
        weight_file.read_state_dict(path, "m")


def test_fingerprint_follows_the_content(tmp_path):
    a, b = tmp_path / "a" / "w.pt", tmp_path / "b" / "w.pt"   # torch's zip names its folder after the file
    a.parent.mkdir()
    b.parent.mkdir()
    torch.save({"w": torch.zeros(600_000)}, a)
    torch.save({"w": torch.zeros(600_000)}, b)
    assert weight_file.fingerprint(a) == weight_file.fingerprint(b) != weight_file.fingerprint(None)
    torch.save({"w": torch.ones(600_000)}, b)
    assert weight_file.fingerprint(a) != weight_file.fingerprint(b)


def test_random_weights_only_when_asked():
    m = SphereFace(allow_random=True)
    assert m.version == "sphereface-sphere20a-random-ffhq"
    with pytest.raises(ValueError, match="arch='r200'; expected one of r18, r34, r50, r100"):
        ArcFaceTorch(arch="r200", allow_random=True)
