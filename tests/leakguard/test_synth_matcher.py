"""Synth matchers: the ArcFace loss against a hand computation, the identity reader against SynthFaces
zips, the acceptance (trained on some SynthFaces people, they tell other people apart), checkpoints.

The acceptance runs a small setting so that it stays fast on 2 CPU cores: 32 px images and network
inputs, 60 training people x 10 images, 15 epochs, 40 held-out people x 10 images. It asks synth (at half
its default width) for TAR >= 0.9 at FMR 1e-2, and synth_b, which learns more slowly, for TAR >= 0.8 at
FMR 1e-2. The full-size numbers (64 px, 300 training people, FMR 1e-3) come from
tools/train_synth_matcher.py.
"""
import json
import math
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from leakguard.cli import matcher as cli_matcher
from leakguard.identity_data import IdentityDataError, read_identity_images
from leakguard.matchers.arcface_loss import ArcFaceLoss
from leakguard.matchers.nets.synth_nets import SynthNetA, SynthNetB, build_net
from leakguard.matchers.synth import SynthMatcher, SynthMatcherB, load_checkpoint
from leakguard.matchers.synth_training import TrainSettings, ensure_synth_matcher, save_checkpoint, train_matcher
from leakguard.matchers.weights import WeightsMissing
from training.data.build import export_zip
from training.data.zip_format import DatasetZipWriter, Record
from tests.synth_matcher import MATCHER_PEOPLE, MATCHER_SETTINGS
from tests.synth_matcher import RES as MATCHER_RES
from training.synthfaces import SynthFaces

RES = 32
TRAIN = dict(num_identities=60, images_per_identity=10, identity_offset=100000)  # matcher training people
HELD_OUT = dict(num_identities=40, images_per_identity=10, identity_offset=0)   # never seen in training


# --- ArcFace ----------------------------------------------------------------------------------------

def hand_arcface(x: np.ndarray, W: np.ndarray, y: np.ndarray, s: float, m: float) -> np.ndarray:
    """Per-sample ArcFace losses the long way: angles by arccos, margin on the true class, log-softmax."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    W = W / np.linalg.norm(W, axis=1, keepdims=True)
    theta = np.arccos(np.clip(x @ W.T, -1, 1))  # [N, C]
    out = []
    for n in range(len(x)):
        z = [s * math.cos(theta[n, j] + m) if j == y[n] else s * math.cos(theta[n, j]) for j in range(len(W))]
        out.append(-z[y[n]] + math.log(sum(math.exp(v) for v in z)))
    return np.array(out)


def test_arcface_matches_hand_computation():
    rng = np.random.default_rng(0)
    x, W = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
    y = np.array([0, 2, 1, 1, 0])
    loss = ArcFaceLoss(4, 3, s=30.0, m=0.5).double()
    with torch.no_grad():
        loss.weight.copy_(torch.from_numpy(W))
    # Every angle to the true class is below pi - m here, where the margin is exactly cos(theta + m).
    theta_y = np.arccos([np.dot(x[n], W[y[n]]) / np.linalg.norm(x[n]) / np.linalg.norm(W[y[n]]) for n in range(5)])
    assert theta_y.max() < math.pi - 0.5
    got = loss(torch.from_numpy(x), torch.from_numpy(y)).detach().numpy()
    np.testing.assert_allclose(got, hand_arcface(x, W, y, 30.0, 0.5), rtol=1e-9, atol=1e-9)
    assert got.shape == (5,)  # unreduced


def test_arcface_past_pi_minus_m_uses_the_linear_fallback():
    # theta_y = 170 degrees: cos(theta + m) would rise again; the logit is cos(theta) - m sin(m) instead,
    # or cos(theta) itself with easy_margin.
    s, m, theta = 10.0, 0.5, math.radians(170)
    x = torch.tensor([[math.cos(theta), math.sin(theta)]], dtype=torch.float64)
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0])
    for easy, margin_logit in ((False, math.cos(theta) - m * math.sin(m)), (True, math.cos(theta))):
        loss = ArcFaceLoss(2, 2, s=s, m=m, easy_margin=easy).double()
        with torch.no_grad():
            loss.weight.copy_(W)
        z = [s * margin_logit, s * math.cos(theta - math.pi / 2)]
        expect = -z[0] + math.log(math.exp(z[0]) + math.exp(z[1]))
        assert float(loss(x, y).detach()) == pytest.approx(expect, rel=1e-12)


def test_arcface_per_sample_and_gradcheck():
    torch.manual_seed(0)
    loss = ArcFaceLoss(4, 3, s=8.0, m=0.5).double()
    x, y = torch.randn(5, 4, dtype=torch.float64, requires_grad=True), torch.tensor([0, 2, 1, 1, 0])
    # Each loss depends on its own sample only (a batch of one gives the same value): DP clips per sample.
    alone = torch.cat([loss(x[k:k + 1], y[k:k + 1]) for k in range(5)])
    torch.testing.assert_close(loss(x, y), alone)
    w = loss.weight.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, w: torch.func.functional_call(loss, {"weight": w}, (x, y)), (x, w))


def test_arcface_gradient_finite_at_the_class_centre():
    loss = ArcFaceLoss(3, 2, s=64.0, m=0.5)
    x = loss.weight.detach()[:1].clone().requires_grad_(True)  # cos(theta_y) = 1 exactly
    loss(x, torch.tensor([0])).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(loss.weight.grad).all()


# --- identity data -----------------------------------------------------------------------------------

def test_identity_data_reads_a_synthfaces_zip(tmp_path):
    faces = SynthFaces(RES, num_identities=3, images_per_identity=2, identity_offset=7, seed=0)
    path = export_zip(tmp_path / "faces.zip", faces)
    images, ids = read_identity_images(path)
    assert images.dtype == torch.uint8 and images.shape == (6, 3, RES, RES)
    assert torch.equal(images, torch.from_numpy(np.array(faces.render_all())))
    assert ids.tolist() == [7, 7, 8, 8, 9, 9]


def write_folder(root, sizes, identities):
    root.mkdir()
    for k, size in enumerate(sizes):
        Image.fromarray(np.full((size, size, 3), 40 * k, np.uint8)).save(root / f"img{k}.png")
    if identities is not None:
        (root / "dataset.json").write_text(json.dumps({"labels": None, "identities": identities}))
    return root


def test_identity_data_reads_a_folder_with_grey_images(tmp_path):
    root = write_folder(tmp_path / "f", [16, 16], [["img0.png", 3], ["img1.png", 5]])
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(root / "img1.png")  # grey: becomes RGB
    images, ids = read_identity_images(root)
    assert images.shape == (2, 3, 16, 16) and ids.tolist() == [3, 5] and int(images[1].min()) == 200


@pytest.mark.parametrize("case,message", [
    ("no_json", "no dataset.json"),
    ("null", 'no "identities"'),
    ("malformed", "entry 1"),
    ("unlisted", "first img1.png"),
    ("sizes", "img1.png in"),
    ("empty", "no images"),
])
def test_identity_data_names_the_file(tmp_path, case, message):
    good = [["img0.png", 0], ["img1.png", 1]]
    table = {"no_json": None, "null": None, "malformed": [["img0.png", 0], ["img1.png", "bob"]],
             "unlisted": good[:1], "sizes": good, "empty": []}[case]
    root = write_folder(tmp_path / "f", [] if case == "empty" else [16, 24 if case == "sizes" else 16], table)
    if case == "null":
        (root / "dataset.json").write_text(json.dumps({"labels": None, "identities": None}))
    with pytest.raises(IdentityDataError, match=message) as e:
        read_identity_images(root)
    assert str(root) in str(e.value)


def test_identity_data_zip_without_identities(tmp_path):
    path = tmp_path / "plain.zip"
    with DatasetZipWriter(path) as w:
        w.add(Record(pixels=np.zeros((8, 8, 3), np.uint8)))
    with pytest.raises(IdentityDataError, match='no "identities"') as e:
        read_identity_images(path)
    assert str(path) in str(e.value)
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(IdentityDataError, match="junk.zip"):
        read_identity_images(tmp_path / "junk.zip")
    with zipfile.ZipFile(tmp_path / "nojson.zip", "w") as z:
        z.writestr("a.png", b"")
    with pytest.raises(IdentityDataError, match="nojson.zip: no dataset.json"):
        read_identity_images(tmp_path / "nojson.zip")


# --- networks ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [SynthNetA, SynthNetB])
def test_nets_shapes(cls):
    net = cls(embedding_dim=16, input_size=32).eval()
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 16)
    with pytest.raises(ValueError, match=r"\[N, 3, 32, 32\]"):
        net(torch.zeros(2, 3, 64, 64))


# --- acceptance: trained on some people, tells other people apart ---------------------------------------

def tar_at_fmr(e: torch.Tensor, ids: torch.Tensor, fmr: float) -> float:
    """Brute force: every pair of distinct images; the threshold is the impostor score exceeded by a
    fraction fmr of the impostor scores; TAR = fraction of genuine scores above it."""
    scores = e @ e.T
    i, j = torch.triu_indices(len(e), len(e), 1)
    pair, same = scores[i, j], ids[i] == ids[j]
    impostor = pair[~same].sort(descending=True).values
    threshold = impostor[int(fmr * len(impostor))]
    assert float((impostor > threshold).float().mean()) <= fmr
    return float((pair[same] > threshold).float().mean())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_matcher")
    train = export_zip(root / "train.zip", SynthFaces(RES, seed=0, **TRAIN))
    held_out = export_zip(root / "held_out.zip", SynthFaces(RES, seed=0, **HELD_OUT))
    return root, train, held_out


# Over seeds 0-3 these reached TAR 0.97-0.99 (synth) and 0.91-0.96 (synth_b) at FMR 1e-2.
SETTINGS = {"synth": TrainSettings(arch="synth", input_size=RES, width=16, epochs=15, batch=32),
            "synth_b": TrainSettings(arch="synth_b", input_size=RES, epochs=15, batch=32, lr=5e-3)}


@pytest.fixture(scope="module")
def trained(data, synth_matcher_trained):
    """synth comes from the session's matcher (conftest: the same people and settings); synth_b is trained here."""
    assert SETTINGS["synth"] == MATCHER_SETTINGS and TRAIN == MATCHER_PEOPLE and RES == MATCHER_RES
    root, train, _ = data
    images, ids = read_identity_images(train)
    # One thread: results do not depend on how reductions are split over cores, and on 2 cores shared
    # with other jobs it runs about twice as fast as two threads that wait for each other.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net, summary = train_matcher(images, ids, SETTINGS["synth_b"], data_name=str(train), log=None)
    finally:
        torch.set_num_threads(threads)
    return {"synth": synth_matcher_trained, "synth_b": (save_checkpoint(root / "synth_b.pt", net, summary), net)}


@pytest.mark.parametrize("cls,bar", [(SynthMatcher, 0.9), (SynthMatcherB, 0.8)])
def test_acceptance_tar_on_held_out_people(data, trained, cls, bar):
    _, _, held_out = data
    images, ids = read_identity_images(held_out)
    first = TRAIN["identity_offset"]
    assert set(ids.tolist()).isdisjoint(range(first, first + TRAIN["num_identities"]))
    e = cls(weights=trained[cls.name][0]).embed(images)
    assert e.shape == (len(images), 128) and torch.allclose(e.norm(dim=1), torch.ones(len(e)))
    tar = tar_at_fmr(e, ids, 1e-2)
    print(f"{cls.name}: TAR {tar:.3f} at FMR 1e-2 on {len(ids.unique())} held-out people")
    assert tar >= bar, f"{cls.name}: TAR {tar:.3f} at FMR 1e-2 on held-out people, expected >= {bar}"


# --- checkpoints and the matcher -------------------------------------------------------------------------

def test_checkpoint_round_trip(data, trained):
    path, net = trained["synth"]
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["arch"] == "synth" and ckpt["embedding_dim"] == 128 and ckpt["input_size"] == [RES, RES]
    assert ckpt["net_kwargs"] == {"embedding_dim": 128, "input_size": RES, "width": 16}
    assert ckpt["summary"]["settings"]["epochs"] == 15 and ckpt["summary"]["identities"] == TRAIN["num_identities"]
    m = SynthMatcher(weights=path)
    x = torch.randint(0, 256, (3, 3, RES, RES), dtype=torch.uint8)
    with torch.no_grad():
        expect = torch.nn.functional.normalize(net(x.float() / 127.5 - 1), dim=1)
    torch.testing.assert_close(m.embed(x), expect)
    assert m.version.startswith("synth-") and m.version != SynthMatcher(allow_random=True).version
    # Any input size is resized to the network's; gradients reach the pixels.
    big = torch.zeros(1, 3, 2 * RES, 2 * RES, requires_grad=True)
    m(big).sum().backward()
    assert big.grad is not None


def test_checkpoint_of_the_other_arch_is_refused(trained):
    with pytest.raises(ValueError, match="holds a 'synth' network.*matcher 'synth'"):
        SynthMatcherB(weights=trained["synth"][0])
    with pytest.raises(ValueError, match="holds a 'synth_b' network"):
        load_checkpoint(trained["synth_b"][0], arch="synth")


def test_not_a_checkpoint(tmp_path, trained):
    torch.save({"G": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt: not a synth matcher checkpoint"):
        SynthMatcher(weights=tmp_path / "other.pt")
    ckpt = torch.load(trained["synth"][0], weights_only=True)
    ckpt["net_kwargs"]["width"] = 8  # a network the state dict does not fit
    torch.save(ckpt, tmp_path / "narrow.pt")
    with pytest.raises(ValueError, match="narrow.pt does not fit the network; wrong shape"):
        SynthMatcher(weights=tmp_path / "narrow.pt")


def test_missing_weights_say_how_to_train(tmp_path):
    with pytest.raises(WeightsMissing, match="leakguard matcher train --data ZIP --arch synth --out PATH"):
        SynthMatcher()
    with pytest.raises(WeightsMissing, match="--arch synth_b"):
        SynthMatcherB(weights=tmp_path / "nope.pt")
    assert SynthMatcherB(allow_random=True).embed(torch.zeros(2, 3, 64, 64, dtype=torch.uint8)).shape == (2, 128)


def test_cli_train_and_ensure_cache(tmp_path):
    faces = SynthFaces(RES, num_identities=4, images_per_identity=3, identity_offset=100000, seed=0)
    zip_path = export_zip(tmp_path / "faces.zip", faces)
    parser = __import__("argparse").ArgumentParser()
    cli_matcher.add_arguments(parser)
    args = parser.parse_args(["train", "--data", str(zip_path), "--arch", "synth_b", "--out", str(tmp_path / "b.pt"),
                              "--epochs", "1", "--batch", "4", "--input-size", "32"])
    cli_matcher.run(args)
    assert SynthMatcherB(weights=tmp_path / "b.pt").embedding_dim == 128
    logs = []
    st = TrainSettings(input_size=RES, epochs=1, batch=4, embedding_dim=8)
    first = ensure_synth_matcher("synth", tmp_path / "cache", zip_path, st, log=logs.append)
    assert logs and SynthMatcher(weights=first).embedding_dim == 8
    logs.clear()
    assert ensure_synth_matcher("synth", tmp_path / "cache", zip_path, st, log=logs.append) == first and not logs
    assert ensure_synth_matcher("synth_b", tmp_path / "cache", zip_path, st, log=logs.append) != first


def test_training_is_deterministic():
    faces = SynthFaces(RES, num_identities=3, images_per_identity=2, identity_offset=100000, seed=0)
    images, ids = torch.from_numpy(np.array(faces.render_all())), torch.from_numpy(faces.identities)
    st = TrainSettings(input_size=RES, epochs=2, batch=3, embedding_dim=8)
    state = [train_matcher(images, ids, st, log=None)[0].state_dict() for _ in range(2)]
    assert all(torch.equal(state[0][k], state[1][k]) for k in state[0])
    assert build_net("synth", 8, RES).state_dict().keys() == state[0].keys()
