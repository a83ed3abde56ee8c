"""SynthFaces: deterministic, identity-preserving, anti-aliased, and the dataset/zip/CLI around it."""
import hashlib
import io
import itertools
import json
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.cli import main
from training.data.build import export_zip
from training.synthfaces import (BEARDS, GLASSES, HAIR_STYLES, IDENTITY_RANGES, IdentityParams, Nuisance, SynthFaces,
                                 identity_params, nuisance_params, parts, render_face)
from training.synthfaces.render import Canvas, composite

REPO = Path(__file__).resolve().parents[2]
# (identity, image index, resolution) rendered in this process and in a fresh one.
SAMPLES = [(0, 0, 32), (1, 3, 64), (7, 2, 47), (123456, 9, 128), (5, 1, 256)]


def digest_of_samples() -> str:
    h = hashlib.sha256()
    for i, k, res in SAMPLES:
        h.update(render_face(identity_params(i, seed=3), nuisance_params(i, k, seed=3), res).tobytes())
    return h.hexdigest()


def test_params_are_functions_of_their_seeds():
    assert identity_params(4, seed=1) == identity_params(4, seed=1)
    assert nuisance_params(4, 2, seed=1) == nuisance_params(4, 2, seed=1)
    assert identity_params(4, seed=1) != identity_params(4, seed=2)
    assert nuisance_params(4, 2, seed=1) != nuisance_params(4, 2, seed=2)
    assert nuisance_params(4, 2, seed=1) != nuisance_params(5, 2, seed=1)
    # SeedSequence pads entropy with zeros: image 0 must still be its own draw.
    assert len({nuisance_params(4, k, seed=1) for k in range(3)}) == 3


def test_global_rng_is_neither_read_nor_changed():
    np.random.seed(1)
    state = np.random.get_state()[1].copy()
    a = render_face(identity_params(2), nuisance_params(2, 5), 32)
    assert np.array_equal(np.random.get_state()[1], state)
    np.random.seed(99)
    assert np.array_equal(render_face(identity_params(2), nuisance_params(2, 5), 32), a)


def test_rendering_is_byte_identical_twice_and_in_a_fresh_process():
    here = digest_of_samples()
    assert digest_of_samples() == here
    code = "from tests.training.test_synthfaces import digest_of_samples; print(digest_of_samples())"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here


def test_render_output_and_resolution_bounds():
    p, n = identity_params(0), nuisance_params(0, 0)
    for res in (32, 33, 100, 256):
        img = render_face(p, n, res)
        assert img.dtype == np.uint8 and img.shape == (res, res, 3)
    for res in (31, 257, 0, 64.0, True, "64"):
        with pytest.raises(ValueError, match=r"resolution=.*32 to 256"):
            render_face(p, n, res)
    with pytest.raises(TypeError, match="IdentityParams"):
        render_face(n, p, 32)


def test_bad_counters_are_rejected():
    with pytest.raises(ValueError, match=r"identity_id=-1"):
        identity_params(-1)
    with pytest.raises(ValueError, match=r"seed=4294967296"):
        identity_params(0, seed=2**32)
    with pytest.raises(ValueError, match=r"image_index=1.5"):
        nuisance_params(0, 1.5)


def normalized(p: IdentityParams) -> np.ndarray:
    """The uniform identity parameters, each mapped to [0, 1] by its range."""
    return np.array([(getattr(p, k) - lo) / (hi - lo) for k, (lo, hi) in IDENTITY_RANGES.items() if hasattr(p, k)])


def test_identity_params_are_identities():
    faces = SynthFaces(num_identities=4, images_per_identity=5, seed=2)
    for identity_id in np.unique(faces.identities):
        items = np.flatnonzero(faces.identities == identity_id)
        nuisances = [nuisance_params(int(identity_id), int(faces.image_indices[i]), 2) for i in items]
        assert len(set(nuisances)) == len(items)  # every image differs in nuisance
        assert all(identity_params(faces.get_identity(i), 2) == identity_params(int(identity_id), 2) for i in items)
    # Any two people differ clearly: in many parameters, each by over a tenth of its range.
    vectors = [normalized(identity_params(i)) for i in range(50)]
    assert len(vectors[0]) >= 18
    counts = [int((np.abs(a - b) > 0.1).sum()) for a, b in itertools.combinations(vectors, 2)]
    assert min(counts) >= 6


def test_neutral_images_depend_on_identity_only():
    neutral = Nuisance.neutral()
    images = [render_face(identity_params(i), neutral, 32).astype(np.float64) for i in range(12)]
    assert np.array_equal(render_face(identity_params(3), neutral, 32), images[3])
    distances = [np.abs(a - b).mean() for a, b in itertools.combinations(images, 2)]
    assert min(distances) > 5.0  # grey levels (11.7 here): every pair of people looks different


def test_nearest_neighbour_on_face_pixels_recognises_people():
    """With real nuisance, 1-NN on 4x4-pooled central pixels must beat chance (1/30) by far."""
    faces = SynthFaces(resolution=32, num_identities=30, images_per_identity=6, seed=0)
    x = faces.render_all().astype(np.float32) / 255
    features = x[:, :, 8:24, 8:24].reshape(len(x), 3, 4, 4, 4, 4).mean(axis=(3, 5)).reshape(len(x), -1)
    gallery, probe = faces.image_indices < 3, faces.image_indices >= 3
    d = ((features[probe][:, None] - features[gallery][None]) ** 2).sum(-1)
    accuracy = (faces.identities[gallery][d.argmin(1)] == faces.identities[probe]).mean()
    assert accuracy > 0.6, accuracy  # 0.97 on this seed


def test_anti_aliasing_matches_supersampling():
    """A 64 px render is close to a 256 px render box-filtered by 4, much closer than point sampling."""
    for i in range(3):
        n = replace(nuisance_params(i, 0), noise_sigma=0.0)
        low = render_face(identity_params(i), n, 64).astype(np.float64)
        high = render_face(identity_params(i), n, 256).astype(np.float64)
        oracle = high.reshape(64, 4, 64, 4, 3).mean(axis=(1, 3))
        aliased = high[1::4, 1::4]
        assert np.abs(low - oracle).mean() < 0.5 * np.abs(aliased - oracle).mean()
        assert np.abs(low - oracle).mean() < 1.0  # grey levels


def people_with_every_feature(seed: int = 0) -> list[IdentityParams]:
    """The first people who, together, show every hair style, beard and glasses kind."""
    wanted = {("hair", i) for i in range(len(HAIR_STYLES))} | {("beard", i) for i in range(len(BEARDS))} \
        | {("glasses", i) for i in range(len(GLASSES))}
    people = []
    for i in itertools.count():
        p = identity_params(i, seed)
        has = {("hair", p.hair_style), ("beard", p.beard), ("glasses", p.glasses)}
        if has & wanted:
            people.append(p)
            wanted -= has
        if not wanted:
            return people


def test_windowed_painting_equals_painting_everywhere():
    """Each part is painted only inside its bounding window; a window too small would cut it off."""
    people = people_with_every_feature()
    assert len(people) <= 12
    for p in people:
        extremes = [dict(yaw=0.45, smile=1.0, mouth_open=1.0, brow_raise=1.0, gaze=(1.0, 0.6)),
                    dict(yaw=-0.45, smile=-0.3, mouth_open=0.0, brow_raise=-1.0, gaze=(-1.0, -0.6))]
        for k, extreme in enumerate(extremes):
            n = replace(nuisance_params(p.identity_id, k), **extreme)
            images = []
            for windowed in (True, False):
                canvas = Canvas(256, n, windowed=windowed)
                parts.draw_face(canvas, p, n)
                images.append(composite(canvas, n))
            assert np.array_equal(*images), (p.identity_id, k)


def test_dataset_layout_offset_and_overrep():
    faces = SynthFaces(resolution=32, num_identities=6, images_per_identity=3, identity_offset=10,
                       overrep_identity=12, overrep_images=8, seed=1)
    assert len(faces) == 5 * 3 + 8
    assert faces.name == "synthfaces-32-ids6x3-seed1-from10-overrep12x8"
    assert faces.identities.dtype == np.int64
    assert list(np.unique(faces.identities)) == list(range(10, 16))
    assert (faces.identities == 12).sum() == 8 and all((faces.identities == i).sum() == 3 for i in (10, 11, 13, 14, 15))
    assert np.all(np.diff(faces.identities) >= 0)  # identity by identity
    assert [faces.get_identity(i) for i in range(len(faces))] == list(faces.identities)
    assert faces.image_shape == [3, 32, 32] and faces.num_channels == 3
    assert faces.label_dim == 0 and not faces.has_labels
    img, label = faces[-1]
    assert img.shape == (3, 32, 32) and img.dtype == np.uint8 and label.shape == (0,) and label.dtype == np.float32
    with pytest.raises(IndexError):
        faces[len(faces)]
    # Disjoint offsets give disjoint people; a shared person's images are the same in both datasets.
    before = SynthFaces(resolution=32, num_identities=10, images_per_identity=3, identity_offset=0, seed=1)
    assert set(before.identities) == set(range(10)) and not set(before.identities) & set(faces.identities)
    overlapping = SynthFaces(resolution=32, num_identities=4, images_per_identity=3, identity_offset=12, seed=1)
    assert np.array_equal(overlapping[0][0], faces[int(np.flatnonzero(faces.identities == 12)[0])][0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(resolution=16), r"resolution=16"),
    (dict(resolution=512), r"resolution=512"),
    (dict(num_identities=0), r"num_identities=0"),
    (dict(images_per_identity=0), r"images_per_identity=0"),
    (dict(identity_offset=-1), r"identity_offset=-1"),
    (dict(seed=-3), r"seed=-3"),
    (dict(overrep_identity=10, overrep_images=50), r"overrep_identity=10: .* 0\.\.9"),
    (dict(overrep_identity=3, overrep_images=5), r"overrep_images=5: .* > images_per_identity \(5\)"),
    (dict(overrep_images=50), r"overrep_images=50: needs overrep_identity"),
])
def test_dataset_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SynthFaces(**{**dict(num_identities=10, images_per_identity=5), **kwargs})


def test_cache_render_all_and_workers_agree():
    faces = SynthFaces(resolution=32, num_identities=26, images_per_identity=5, seed=4)
    first = faces[7][0]
    first[:] = 0  # items are copies: writing to one must not reach the cache
    assert np.array_equal(faces[7][0], faces.render(7).transpose(2, 0, 1))
    cached = faces.render_all()
    assert cached.shape == (130, 3, 32, 32) and not cached.flags.writeable
    assert all(np.array_equal(cached[i], faces.render(i).transpose(2, 0, 1)) for i in (0, 7, 129))
    uncached = SynthFaces(resolution=32, num_identities=26, images_per_identity=5, seed=4, cache=False)
    assert np.array_equal(uncached.render_all(num_workers=2), cached)
    with pytest.raises(ValueError, match="num_workers=0"):
        faces.render_all(num_workers=0)


def read_zip(path):
    with zipfile.ZipFile(path) as z:
        meta = json.loads(z.read("dataset.json"))
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        images = [np.asarray(Image.open(io.BytesIO(z.read(n)))) for n in names]
    return meta, names, images


def test_export_zip_round_trips(tmp_path):
    faces = SynthFaces(resolution=32, num_identities=3, images_per_identity=2, identity_offset=5,
                       overrep_identity=6, overrep_images=4, seed=7)
    path = export_zip(tmp_path / "faces.zip", faces)
    meta, names, images = read_zip(path)
    assert meta["labels"] is None
    assert dict(meta["identities"]) == {n: faces.get_identity(i) for i, n in enumerate(names)}
    assert len(images) == len(faces) == 8
    for i, img in enumerate(images):
        assert np.array_equal(img.transpose(2, 0, 1), faces[i][0])


def test_cli_writes_the_zip(tmp_path, capsys):
    out = tmp_path / "x.zip"
    assert main(["synthfaces", "--out", str(out), "--resolution", "32", "--identities", "3",
                 "--images-per-identity", "2", "--identity-offset", "4", "--seed", "1"]) == 0
    meta, names, images = read_zip(out)
    assert [i for _, i in meta["identities"]] == [4, 4, 5, 5, 6, 6]
    faces = SynthFaces(resolution=32, num_identities=3, images_per_identity=2, identity_offset=4, seed=1)
    assert all(np.array_equal(img.transpose(2, 0, 1), faces[i][0]) for i, img in enumerate(images))
    assert "6 images of 3 identities" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--resolution", "300"], "--resolution 300"),
    (["--identities", "0"], "--identities 0"),
    (["--overrep-identity", "9", "--overrep-images", "50"], "--overrep-identity 9"),
    (["--overrep-identity", "1", "--overrep-images", "2"], "--overrep-images 2"),
    (["--workers", "0"], "--workers 0"),
])
def test_cli_rejects_bad_arguments(tmp_path, capsys, argv, message):
    out = tmp_path / "x.zip"
    assert main(["synthfaces", "--out", str(out), "--identities", "3", "--images-per-identity", "2"] + argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
