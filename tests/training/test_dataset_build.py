"""`leakguard dataset`: source folders to a dataset zip, checked by reading the zip back with
ImageDataset and comparing with crops and resizes done by hand with PIL."""
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from training.cli import main
from training.data.dataset import ImageDataset
from training.data.build import (build_zip, iter_celeba, iter_flat, iter_identity_folders,
                                    read_celeba_identities)
from training.data.zip_format import DatasetZipWriter, Record, archive_name


def noise(w, h, seed, channels=3):
    """[h, w, C] random pixels: every crop offset or resampling difference shows up."""
    shape = (h, w) if channels == 1 else (h, w, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(array, path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)
    return path


def expected(path, box, resolution, mode="RGB"):
    """The oracle: PIL's crop of `box` (left, top, right, bottom), Lanczos resize, as [C, H, W]."""
    img = Image.open(path).convert(mode).crop(box)
    if img.size != (resolution, resolution):
        img = img.resize((resolution, resolution), Image.LANCZOS)
    a = np.asarray(img)
    return a[np.newaxis] if a.ndim == 2 else a.transpose(2, 0, 1)


def person_tree(root):
    """Three people, sizes chosen so that crops are off-centre in both directions."""
    files = {"carol/c1.png": (40, 30), "alice/a2.png": (30, 50), "alice/a1.png": (24, 24),
             "bob/x/b1.png": (33, 20), "bob/b2.png": (20, 21)}
    for k, (name, (w, h)) in enumerate(files.items()):
        save(noise(w, h, k), root / name)
    return root


def test_identity_folders_round_trip_through_the_cli(tmp_path, capsys):
    src = person_tree(tmp_path / "people")
    dest = tmp_path / "out" / "faces.zip"
    assert main(["dataset", "--source", str(src), "--dest", str(dest), "--layout", "identity-folders",
                 "--resolution", "16"]) == 0
    ds = ImageDataset(dest, resolution=16)
    # alice, bob, carol -> 0, 1, 2; files sorted by path inside each folder.
    order = [("alice/a1.png", 0), ("alice/a2.png", 0), ("bob/b2.png", 1), ("bob/x/b1.png", 1), ("carol/c1.png", 2)]
    assert len(ds) == 5
    np.testing.assert_array_equal(ds.identities, [i for _, i in order])
    boxes = {(24, 24): (0, 0, 24, 24), (30, 50): (0, 10, 30, 40), (33, 20): (6, 0, 26, 20),
             (20, 21): (0, 0, 20, 20), (40, 30): (5, 0, 35, 30)}  # largest centred squares, by hand
    for i, (name, _) in enumerate(order):
        path = src / name
        np.testing.assert_array_equal(ds[i][0], expected(path, boxes[Image.open(path).size], 16), err_msg=name)
    names_file = tmp_path / "out" / "faces.identities.json"
    assert json.loads(names_file.read_text()) == {"0": "alice", "1": "bob", "2": "carol"}
    out = capsys.readouterr().out
    assert "wrote 5 images (16x16, 3 channels), 3 identities, 0 skipped" in out and str(dest) in out


def celeba_tree(root, n=4, missing=()):
    folder = root / "img_align_celeba"
    for k in range(1, n + 1):
        if f"{k:06d}.jpg" not in missing:
            save(noise(178, 218, k), folder / f"{k:06d}.jpg", quality=90)
    save(noise(178, 218, 99), folder / "999999.jpg")  # in the folder, not in the identity file
    ids = root / "identity_CelebA.txt"
    ids.write_text("".join(f"{k:06d}.jpg {2880 + k % 2}\n" for k in range(1, n + 1)))
    return folder, ids


def test_celeba_layout_with_the_face_crop(tmp_path):
    folder, ids = celeba_tree(tmp_path)
    dest = tmp_path / "celeba.zip"
    assert main(["dataset", "--source", str(folder), "--dest", str(dest), "--layout", "celeba",
                 "--celeba-identities", str(ids), "--celeba-crop", "--resolution", "32"]) == 0
    ds = ImageDataset(dest)
    assert len(ds) == 4 and ds.resolution == 32
    np.testing.assert_array_equal(ds.identities, [2881, 2880, 2881, 2880])
    for i in range(4):
        want = expected(folder / f"{i + 1:06d}.jpg", (19, 40, 159, 180), 32)  # 140x140, left 19, top 40
        np.testing.assert_array_equal(ds[i][0], want)
    assert not (tmp_path / "celeba.identities.json").exists()  # the ids are CelebA's own


def test_celeba_crop_needs_celeba_sized_images(tmp_path):
    src = person_tree(tmp_path / "people")
    with pytest.raises(ValueError, match=r"c1\.png is 40x30; --celeba-crop expects .*178x218"):
        build_zip(iter_flat(src / "carol"), tmp_path / "d.zip", 16, celeba_crop=True)


def test_celeba_missing_images_are_named_or_skipped(tmp_path):
    folder, ids = celeba_tree(tmp_path, n=4, missing={"000002.jpg", "000004.jpg"})
    with pytest.raises(ValueError, match=r"2 of the 4 images listed in .*: 000002\.jpg, 000004\.jpg.*--skip-bad"):
        iter_celeba(folder, ids)
    summary = build_zip(iter_celeba(folder, ids, skip_missing=True), tmp_path / "d.zip", 8, skip_bad=True)
    assert summary.written == 2 and summary.identities == 1 and len(summary.skipped) == 2
    assert summary.skipped[0].endswith("000002.jpg")
    np.testing.assert_array_equal(ImageDataset(tmp_path / "d.zip").identities, [2881, 2881])


def test_identity_file_line_that_does_not_parse(tmp_path, capsys):
    folder, ids = celeba_tree(tmp_path, n=2)
    ids.write_text("000001.jpg 2880\n\n000002.jpg person7\n")
    with pytest.raises(ValueError, match=r"identity_CelebA\.txt:3: expected '<image> <identity>'.*person7"):
        read_celeba_identities(ids)
    assert main(["dataset", "--source", str(folder), "--dest", str(tmp_path / "d.zip"), "--layout", "celeba",
                 "--celeba-identities", str(ids)]) == 2
    assert "identity_CelebA.txt:3" in capsys.readouterr().err
    ids.write_text("000001.jpg 1\n000001.jpg 2\n")
    with pytest.raises(ValueError, match=r"identity_CelebA\.txt:2: 000001\.jpg is listed again \(first on line 1\)"):
        read_celeba_identities(ids)


def test_flat_rebuild_of_a_zip_carries_labels_and_identities(tmp_path):
    arrays = [noise(16, 16, k) for k in range(3)]
    with DatasetZipWriter(tmp_path / "big.zip") as w:
        for k, a in enumerate(arrays):
            w.add(Record(a, label=k % 2, identity=10 + k))
    summary = build_zip(iter_flat(tmp_path / "big.zip"), tmp_path / "small.zip", 8)
    ds = ImageDataset(tmp_path / "small.zip", use_labels=True)
    assert summary.written == 3 and ds.resolution == 8 and ds.label_dim == 2
    np.testing.assert_array_equal(ds.identities, [10, 11, 12])
    np.testing.assert_array_equal(ds.get_label(1), [0, 1])
    want = np.asarray(Image.fromarray(arrays[2]).resize((8, 8), Image.LANCZOS)).transpose(2, 0, 1)
    np.testing.assert_array_equal(ds[2][0], want)


def test_corrupt_source_stops_the_build_or_is_skipped(tmp_path, capsys):
    src = person_tree(tmp_path / "people")
    data = (src / "bob/b2.png").read_bytes()
    (src / "bob/b2.png").write_bytes(data[:len(data) // 2])
    dest = tmp_path / "d.zip"
    with pytest.raises(ValueError, match=r"bob/b2\.png: cannot read image .*--skip-bad"):
        build_zip(iter_identity_folders(src), dest, 16)
    assert not dest.exists() and list(tmp_path.glob("d.zip*")) == []  # no partial zip left behind
    assert main(["dataset", "--source", str(src), "--dest", str(dest), "--layout", "identity-folders",
                 "--resolution", "16", "--skip-bad"]) == 0
    assert "wrote 4 images (16x16, 3 channels), 3 identities, 1 skipped" in capsys.readouterr().out
    assert len(ImageDataset(dest)) == 4


def test_transform_none_keeps_pixels_and_refuses_other_sizes(tmp_path):
    a = noise(8, 8, 0)
    save(a, tmp_path / "src" / "a.png")
    summary = build_zip(iter_flat(tmp_path / "src"), tmp_path / "d.zip", transform="none")
    assert summary.resolution == 8
    np.testing.assert_array_equal(ImageDataset(tmp_path / "d.zip")[0][0], a.transpose(2, 0, 1))
    save(noise(16, 8, 1), tmp_path / "src" / "b.png")
    with pytest.raises(ValueError, match=r"b\.png is 16x8, but --transform none needs .* 8x8"):
        build_zip(iter_flat(tmp_path / "src"), tmp_path / "d.zip", transform="none")


def test_resolution_defaults_to_the_first_crop_and_must_be_a_power_of_two(tmp_path):
    save(noise(32, 48, 0), tmp_path / "src" / "a.png")
    save(noise(64, 64, 1), tmp_path / "src" / "b.png")
    summary = build_zip(iter_flat(tmp_path / "src"), tmp_path / "d.zip")
    assert summary.resolution == 32 and ImageDataset(tmp_path / "d.zip").resolution == 32
    with pytest.raises(ValueError, match="--resolution 48: .*power of two"):
        build_zip(iter_flat(tmp_path / "src"), tmp_path / "d.zip", 48)
    save(noise(24, 30, 2), tmp_path / "src2" / "a.png")
    with pytest.raises(ValueError, match=r"no --resolution given.*a\.png \(24x30\) would set it to 24 px.*pass --resolution N"):
        build_zip(iter_flat(tmp_path / "src2"), tmp_path / "e.zip")


def test_max_images_and_grayscale(tmp_path):
    for k in range(4):
        save(noise(8, 8, k), tmp_path / "src" / f"{k}.png")
    summary = build_zip(iter_flat(tmp_path / "src"), tmp_path / "d.zip", max_images=3, grayscale=True)
    ds = ImageDataset(tmp_path / "d.zip")
    assert summary.written == 3 and summary.channels == 1 and ds.image_shape == [1, 8, 8] and len(ds) == 3
    np.testing.assert_array_equal(ds[2][0], expected(tmp_path / "src" / "2.png", (0, 0, 8, 8), 8, mode="L"))


def test_xflip_writes_each_image_then_its_mirror_with_the_same_identity(tmp_path):
    src = person_tree(tmp_path / "people")
    dest = tmp_path / "flip.zip"
    assert main(["dataset", "--source", str(src), "--dest", str(dest), "--layout", "identity-folders",
                 "--resolution", "16", "--xflip", "--max-images", "3"]) == 0
    ds = ImageDataset(dest, resolution=16)
    assert len(ds) == 6  # --max-images counts source images
    np.testing.assert_array_equal(ds.identities, [0, 0, 0, 0, 1, 1])
    for i in range(0, 6, 2):
        np.testing.assert_array_equal(ds[i + 1][0], ds[i][0][:, :, ::-1])
    np.testing.assert_array_equal(ds[0][0], expected(src / "alice/a1.png", (0, 0, 24, 24), 16))


def test_identity_folders_refuses_loose_images(tmp_path):
    src = person_tree(tmp_path / "people")
    save(noise(8, 8, 0), src / "stray.png")
    with pytest.raises(ValueError, match=r"stray\.png is directly in .*<person>/<image>"):
        iter_identity_folders(src)


def test_built_zip_has_the_official_layout(tmp_path):
    src = person_tree(tmp_path / "people")
    build_zip(iter_identity_folders(src), tmp_path / "d.zip", 8)
    with zipfile.ZipFile(tmp_path / "d.zip") as z:
        assert sorted(z.namelist()) == sorted([archive_name(i) for i in range(5)] + ["dataset.json"])
        meta = json.loads(z.read("dataset.json"))
    assert meta["labels"] is None
    assert meta["identities"] == [[archive_name(i), k] for i, k in enumerate([0, 0, 1, 1, 2])]


@pytest.mark.parametrize("args, match", [
    (["--source", "{tmp}/nowhere"], "nowhere"),
    (["--source", "{tmp}/people", "--layout", "celeba"], "needs --celeba-identities"),
    (["--source", "{tmp}/people", "--celeba-identities", "x.txt"], "only read with --layout celeba"),
    (["--source", "{tmp}/people", "--resolution", "48"], "--resolution 48"),
    (["--source", "{tmp}/people", "--dest", "{tmp}/d.tar"], "ending in .zip"),
    (["--source", "{tmp}/empty"], "no images found"),
])
def test_cli_errors_exit_2(tmp_path, capsys, args, match):
    person_tree(tmp_path / "people")
    (tmp_path / "empty").mkdir()
    argv = ["dataset", "--dest", str(tmp_path / "d.zip")] + [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("leakguard dataset: error:") and match in err and err.count("\n") == 1
