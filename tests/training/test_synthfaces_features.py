"""The `synthfaces` feature extractor: its targets, a tiny net trained once on SynthFaces people from
300000, and the FID paper's sanity check (Heusel et al. 2017, fig. 1 and appendix): FD between two
disjoint sets of real images is small next to FD against the same images blurred, noised or colour
shifted, and grows with each corruption's strength."""
import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from leakguard.fidelity.extractors import build_extractor, extractor_names
from leakguard.fidelity.metrics import feature_statistics, frechet_distance
from leakguard.fidelity.synth_features import FeatureNetSettings, SynthFacesFeatures, save_feature_net
from training.synthfaces import SynthFaces, identity_params
from training.synthfaces.feature_net import ensure_synthfaces_features, group_r2, train_on_synthfaces
from training.synthfaces.targets import TARGET_NAMES, dataset_targets, render_targets, target_group

RES = 32


# --- targets ---------------------------------------------------------------------------------------

def test_targets_are_deterministic_named_and_cover_every_drawn_parameter():
    t = render_targets(300001, 3)
    assert t.dtype == np.float32 and t.shape == (len(TARGET_NAMES),) and len(set(TARGET_NAMES)) == len(t)
    np.testing.assert_array_equal(t, render_targets(300001, 3))
    assert not np.array_equal(t, render_targets(300001, 4)) and not np.array_equal(t, render_targets(300001, 3, 1))
    # identity: 20 scalars (IDENTITY_RANGES less lip_redness, drawn into lip_color), 6 colours, one-hots of
    # 6 + 4 + 3; nuisance: 8 scalars, 2 pairs (shift, gaze), 2 angles as (cos, sin), 3 colours (background x 2, shirt)
    assert len(TARGET_NAMES) == 20 + 6 * 3 + 13 + 8 + 2 * 2 + 2 * 2 + 3 * 3
    named = dict(zip(TARGET_NAMES, t))
    for group, count in (("hair_style", 6), ("beard", 4), ("glasses", 3)):
        hot = [v for k, v in named.items() if target_group(k) == group]
        assert len(hot) == count and sorted(hot) == [0.0] * (count - 1) + [1.0]
    assert named["light_angle.cos"] ** 2 + named["light_angle.sin"] ** 2 == pytest.approx(1, abs=1e-6)
    assert not {"identity_id", "noise_seed"} & {target_group(k) for k in TARGET_NAMES}


def test_dataset_targets_are_each_images_targets_and_glasses_colour_needs_glasses():
    faces = SynthFaces(RES, 3, 2, identity_offset=300000)
    rows = dataset_targets(faces)
    expected = [render_targets(int(i), int(k)) for i, k in zip(faces.identities, faces.image_indices)]
    np.testing.assert_array_equal(rows, np.stack(expected))
    bare = next(i for i in range(300000, 300100) if identity_params(i).glasses == 0)
    named = dict(zip(TARGET_NAMES, render_targets(bare, 0)))
    assert [named[f"glasses_color.{c}"] for c in "rgb"] == [0.0, 0.0, 0.0]


# --- a tiny trained net ----------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small convolutions: on a shared 2-core machine a second thread costs more than it gives."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    # 300 people x 2 images: more people, less to memorise, than 100 x 6 at the same cost
    net, summary = train_on_synthfaces(RES, 300, 2, FeatureNetSettings(epochs=10), log=None)
    return save_feature_net(tmp_path_factory.mktemp("synthfaces_features") / "synthfaces-32.pt", net, summary)


@pytest.fixture(scope="module")
def real(weights):
    """Two disjoint sets of 200 people's images, the first as a SynthFaces (its targets), and the extractor."""
    a = SynthFaces(RES, 200, 1, identity_offset=400000)
    b = SynthFaces(RES, 200, 1, identity_offset=410000)
    images_a, images_b = (torch.from_numpy(np.array(f.render_all())) for f in (a, b))
    ex = build_extractor("synthfaces", str(weights))
    out = dict(faces_a=a, a=images_a, b=images_b, extractor=ex, stats_a=feature_statistics(ex.embed(images_a)))
    return {**out, "clean_fd": fd(out, images_b)}


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of uint8 [N, 3, H, W], sigma in pixels, edges reflected."""
    r = int(3 * sigma + 1)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).repeat(3, 1, 1, 1)                                    # [3, 1, 1, 2r+1]
    y = F.conv2d(F.pad(x.float(), (r, r, 0, 0), mode="reflect"), k, groups=3)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.transpose(2, 3), groups=3)
    return y.round().clamp(0, 255).to(torch.uint8)


def noise(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian pixel noise of std sigma in [0, 1] units."""
    g = torch.Generator().manual_seed(0)
    return (x.float() + sigma * 255 * torch.randn(x.shape, generator=g)).round().clamp(0, 255).to(torch.uint8)


def colour_shift(x: torch.Tensor, s: float) -> torch.Tensor:
    """Warmer by s: red gains s, blue loses s (relative)."""
    gain = torch.tensor([1 + s, 1.0, 1 - s]).view(1, 3, 1, 1)
    return (x.float() * gain).round().clamp(0, 255).to(torch.uint8)


def fd(real: dict, images: torch.Tensor) -> float:
    """FD between the first real set and `images` in the extractor's features."""
    return frechet_distance(*real["stats_a"], *feature_statistics(real["extractor"].embed(images)))


@pytest.mark.parametrize("corrupt, strengths", [(blur, (1.0, 1.5, 2.0)), (noise, (0.1, 0.2, 0.3)),
                                                (colour_shift, (0.1, 0.2, 0.3))])
def test_fd_is_small_between_real_sets_and_grows_with_each_corruption(real, corrupt, strengths):
    clean = real["clean_fd"]
    corrupted = [fd(real, corrupt(real["b"], s)) for s in strengths]
    print(f"{corrupt.__name__}: clean {clean:.2f}; " + ", ".join(f"{s}: {v:.2f}" for s, v in zip(strengths, corrupted)))
    assert clean < corrupted[0] and all(lo < hi for lo, hi in zip(corrupted, corrupted[1:]))
    assert corrupted[-1] > 2 * clean


def test_held_out_predictions_beat_the_mean(real):
    r2 = group_r2(real["extractor"].net, real["faces_a"])
    assert r2["all"] > 0
    assert r2["skin"] > 0.5 and r2["bg_colors"] > 0.5  # what covers most pixels is learnt first


def test_the_extractor_embeds_deterministically_in_its_feature_layer(real, weights):
    ex = real["extractor"]
    assert isinstance(ex, SynthFacesFeatures) and "synthfaces" in extractor_names()
    assert ex.metric_prefix == "fd_synthfaces"
    assert ex.version == f"synthfaces-{hashlib.sha256(weights.read_bytes()).hexdigest()[:16]}"
    e = ex.embed(real["a"][:40])
    assert e.dtype == torch.float32 and e.shape == (40, ex.embedding_dim) and ex.embedding_dim != len(TARGET_NAMES)
    torch.testing.assert_close(ex.embed(real["a"][:40]), e, rtol=0, atol=0)
    torch.testing.assert_close(ex.embed(real["a"][7:8]), e[7:8])  # the batch does not change an image's features


def test_ensure_trains_on_first_use_then_returns_the_file(tmp_path):
    path = tmp_path / "cache" / "synthfaces-32.pt"
    tiny = FeatureNetSettings(width=4, embedding_dim=8, epochs=1, batch=4)
    assert ensure_synthfaces_features(path, RES, people=8, images_per_identity=1, settings=tiny, log=None) == path
    before = path.stat().st_mtime_ns
    assert ensure_synthfaces_features(path, RES, log=None) == path and path.stat().st_mtime_ns == before
    assert build_extractor("synthfaces", str(path)).embedding_dim == 8


def test_ensure_returns_an_existing_net_and_refuses_another_resolution(weights):
    before = weights.stat().st_mtime_ns
    assert ensure_synthfaces_features(weights, RES) == weights and weights.stat().st_mtime_ns == before
    with pytest.raises(ValueError, match=f"{weights}: a synthfaces feature net for 32 px images, but 64 px"):
        ensure_synthfaces_features(weights, 64)


def test_a_missing_or_wrong_file_names_the_path_and_how_to_make_it(tmp_path):
    missing = tmp_path / "nowhere" / "synthfaces-32.pt"
    for path in (str(missing), None):
        with pytest.raises(FileNotFoundError) as e:
            build_extractor("synthfaces", path)
        assert "tools/train_synthfaces_features.py" in str(e.value)
        assert (str(missing) if path else "no path given") in str(e.value)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{bad}: not a synthfaces feature checkpoint"):
        build_extractor("synthfaces", str(bad))
