"""ImageDataset: folder and zip sources read back the pixels, labels and identities that were written."""
import json
import logging
import multiprocessing
import pickle
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import training.data.dataset
from training.data.dataset import DatasetError, ImageDataset
from training.data.zip_format import DatasetZipWriter, Record, archive_name


def random_images(n, size=8, channels=3, seed=0):
    """n [H, W, C] uint8 images of random noise: every pixel matters when comparing."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, channels), dtype=np.uint8) for _ in range(n)]


def save(array, path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path, **kw)


def write_folder(root, arrays, labels=None, identities=None):
    """The images as the zip layout names them, plus dataset.json: a folder twin of write_zip."""
    names = [archive_name(i) for i in range(len(arrays))]
    for name, a in zip(names, arrays):
        save(a, root / name)
    meta = {"labels": None if labels is None else [[n, v] for n, v in zip(names, labels)],
            "identities": None if identities is None else [[n, v] for n, v in zip(names, identities)]}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def write_zip(path, arrays, labels=None, identities=None):
    with DatasetZipWriter(path) as w:
        for i, a in enumerate(arrays):
            w.add(Record(a, None if labels is None else labels[i], None if identities is None else identities[i]))
    return path


def chw(a):
    return a.transpose(2, 0, 1)


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def test_folder_and_zip_read_back_the_written_pixels(tmp_path):
    arrays = random_images(5)
    labels, ids = [0, 2, 1, 2, 0], [7, 7, 3, 9, 3]
    folder = ImageDataset(write_folder(tmp_path / "faces", arrays, labels, ids), use_labels=True)
    zipped = ImageDataset(write_zip(tmp_path / "faces.zip", arrays, labels, ids), resolution=8, use_labels=True)
    for ds in (folder, zipped):
        assert ds.name == "faces" and len(ds) == 5 and ds.image_shape == [3, 8, 8]
        assert ds.resolution == 8 and ds.num_channels == 3 and ds.num_skipped == 0
        assert ds.has_labels and ds.label_dim == 3
        np.testing.assert_array_equal(ds.identities, ids)
        assert ds.identities.dtype == np.int64
        for i in range(5):
            image, label = ds[i]
            assert image.dtype == np.uint8
            np.testing.assert_array_equal(image, chw(arrays[i]))
            np.testing.assert_array_equal(label, np.eye(3, dtype=np.float32)[labels[i]])
            assert label.dtype == np.float32 and ds.get_identity(i) == ids[i]


def test_labels_ignored_without_use_labels(tmp_path):
    ds = ImageDataset(write_zip(tmp_path / "d.zip", random_images(3), labels=[0, 1, 4]))
    assert not ds.has_labels and ds.label_dim == 0
    assert ds[1][1].shape == (0,) and ds.identities is None
    with pytest.raises(DatasetError, match='no identities.*"identities"'):
        ds.get_identity(0)


def test_vector_labels_are_returned_as_they_are(tmp_path):
    vectors = [[0.5, -1.0], [2.0, 0.25], [0.0, 1.0]]
    ds = ImageDataset(write_folder(tmp_path / "d", random_images(3), labels=vectors), use_labels=True)
    assert ds.label_dim == 2
    for i, v in enumerate(vectors):
        np.testing.assert_array_equal(ds.get_label(i), np.float32(v))


def test_xflip_appends_mirrored_copies(tmp_path):
    arrays = random_images(3)
    ds = ImageDataset(write_zip(tmp_path / "d.zip", arrays, labels=[1, 0, 1], identities=[5, 6, 7]),
                      use_labels=True, xflip=True)
    assert len(ds) == 6
    np.testing.assert_array_equal(ds.identities, [5, 6, 7, 5, 6, 7])
    for i in range(3):
        image, label = ds[3 + i]
        np.testing.assert_array_equal(image, chw(arrays[i])[..., ::-1])
        np.testing.assert_array_equal(label, ds[i][1])
        assert image.flags.c_contiguous and ds.get_identity(3 + i) == ds.get_identity(i)
    np.testing.assert_array_equal(ds[-1][0], ds[5][0])
    with pytest.raises(IndexError):
        ds[6]


def test_max_size_keeps_the_first_images(tmp_path):
    arrays = random_images(5)
    ds = ImageDataset(write_zip(tmp_path / "d.zip", arrays, labels=[0, 0, 0, 0, 4], identities=[0, 1, 2, 3, 4]),
                      use_labels=True, max_size=2, xflip=True)
    assert len(ds) == 4 and ds.names == [archive_name(0), archive_name(1)]
    np.testing.assert_array_equal(ds[1][0], chw(arrays[1]))
    np.testing.assert_array_equal(ds.identities, [0, 1, 0, 1])
    assert ds.label_dim == 5  # from all images: a subset must not change the conditioning size


def test_grayscale_images_have_one_channel(tmp_path):
    arrays = random_images(2, size=16, channels=1)
    for ds in (ImageDataset(write_folder(tmp_path / "g", arrays)), ImageDataset(write_zip(tmp_path / "g.zip", arrays))):
        assert ds.num_channels == 1 and ds.image_shape == [1, 16, 16]
        np.testing.assert_array_equal(ds[1][0], chw(arrays[1]))


def test_other_modes_are_read_as_rgb(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (8, 8, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    ds = ImageDataset(tmp_path)
    assert ds.num_channels == 3
    np.testing.assert_array_equal(ds[0][0], chw(rgba[:, :, :3]))  # alpha dropped, colour kept


def test_folder_is_searched_recursively_in_sorted_order_without_hidden_files(tmp_path):
    arrays = random_images(4)
    for name, a in zip(["b/x.png", "a/z/y.JPG", "a/b.bmp", "c.webp"], arrays):
        save(a, tmp_path / name, **({"lossless": True} if name.endswith("webp") else {}))
    save(arrays[0], tmp_path / ".hidden" / "h.png")
    save(arrays[0], tmp_path / "__MACOSX" / "m.png")
    (tmp_path / "._c.png").write_bytes(b"resource fork")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = ImageDataset(tmp_path)
    assert ds.names == ["a/b.bmp", "a/z/y.JPG", "b/x.png", "c.webp"]
    np.testing.assert_array_equal(ds[0][0], chw(arrays[2]))
    np.testing.assert_array_equal(ds[1][0], chw(np.asarray(Image.open(tmp_path / "a/z/y.JPG"))))  # JPEG: as decoded
    np.testing.assert_array_equal(ds[3][0], chw(arrays[3]))


def test_zip_dataset_in_dataloader_workers(tmp_path):
    # Workers must each open the zip: a handle shared across forked processes would mix up reads.
    arrays = random_images(6)
    ds = ImageDataset(write_zip(tmp_path / "d.zip", arrays))
    ds[0]  # the parent now holds an open handle
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2)
    images = torch.cat([x for x, _ in loader]).numpy()
    np.testing.assert_array_equal(images, np.stack([chw(a) for a in arrays]))
    copy = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(copy[5][0], chw(arrays[5]))


def _zip_handle_id(ds, queue):
    queue.put(id(ds._source._file()))


def test_a_forked_process_opens_its_own_zip_handle(tmp_path):
    ds = ImageDataset(write_zip(tmp_path / "d.zip", random_images(2)))
    parent = id(ds._source._file())
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_zip_handle_id, args=(ds, queue))
    child.start()
    child_handle = queue.get(timeout=60)
    child.join()
    assert child_handle != parent  # a forked child sees the parent's objects at the same ids
    assert id(ds._source._file()) == parent  # and the parent keeps its own


# Errors: each names the file or entry at fault and what to do.

@pytest.mark.parametrize("fmt", ["png", "jpg"])
def test_truncated_image_is_reported_or_skipped(tmp_path, fmt):
    arrays = random_images(3, size=32)
    for i, a in enumerate(arrays):
        save(a, tmp_path / f"{i}.{fmt}")
    truncate(tmp_path / f"1.{fmt}")
    with pytest.raises(DatasetError, match=rf"1\.{fmt}.*data\.skip_bad=true"):
        ImageDataset(tmp_path)
    ds = ImageDataset(tmp_path, skip_bad=True)
    assert len(ds) == 2 and ds.num_skipped == 1 and ds.skipped == [f"1.{fmt}"]
    assert ds.names == [f"0.{fmt}", f"2.{fmt}"]


def test_threaded_check_keeps_order_and_max_size(tmp_path, monkeypatch):
    # Large images are decoded in threads, chunk by chunk; shrink both thresholds to run that path.
    monkeypatch.setattr(training.data.dataset, "_THREADS_FROM_PX", 4)
    monkeypatch.setattr(training.data.dataset, "_VERIFY_THREADS", 2)
    monkeypatch.setattr(training.data.dataset, "_CHUNK", 2)
    arrays = random_images(7, size=32)
    for i, a in enumerate(arrays):
        save(a, tmp_path / f"{i}.png")
    truncate(tmp_path / "4.png")
    with pytest.raises(DatasetError, match=r"4\.png.*data\.skip_bad"):
        ImageDataset(tmp_path)
    ds = ImageDataset(tmp_path, skip_bad=True)
    assert ds.names == ["0.png", "1.png", "2.png", "3.png", "5.png", "6.png"] and ds.skipped == ["4.png"]
    np.testing.assert_array_equal(ds[4][0], chw(arrays[5]))
    ds = ImageDataset(tmp_path, skip_bad=True, max_size=5)
    assert ds.names == ["0.png", "1.png", "2.png", "3.png", "5.png"]


def test_skip_bad_logs_the_count(tmp_path, caplog):
    for i, a in enumerate(random_images(3)):
        save(a, tmp_path / f"{i}.png")
    (tmp_path / "1.png").write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        ImageDataset(tmp_path, skip_bad=True)
    assert "skipped 1 unreadable" in caplog.text and "1.png" in caplog.text


def test_truncated_image_in_zip_names_the_member(tmp_path):
    path = write_zip(tmp_path / "d.zip", random_images(2, size=32))
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    bad = archive_name(1)
    members[bad] = members[bad][:len(members[bad]) // 2]
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(DatasetError, match=rf"{bad} in .*d\.zip.*data\.skip_bad"):
        ImageDataset(path)


def test_without_verify_a_truncated_image_fails_when_read(tmp_path):
    for i, a in enumerate(random_images(2, size=32)):
        save(a, tmp_path / f"{i}.png")
    truncate(tmp_path / "1.png")
    ds = ImageDataset(tmp_path, verify=False)  # the header is intact
    assert len(ds) == 2
    ds[0]
    with pytest.raises(DatasetError, match=r"1\.png.*cannot read"):
        ds[1]


def test_mixed_sizes_name_both_files(tmp_path):
    save(random_images(1, size=8)[0], tmp_path / "a.png")
    save(random_images(1, size=16)[0], tmp_path / "b.png")
    with pytest.raises(DatasetError, match=r"a\.png is 8x8 but .*b\.png is 16x16.*leakguard dataset --resolution"):
        ImageDataset(tmp_path)


def test_mixed_channels_name_both_files(tmp_path):
    save(random_images(1, channels=3)[0], tmp_path / "a.png")
    save(random_images(1, channels=1)[0], tmp_path / "b.png")
    with pytest.raises(DatasetError, match=r"a\.png has 3 but .*b\.png has 1"):
        ImageDataset(tmp_path)


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"no images found in .*\(looked for \.png, \.jpg"):
        ImageDataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere.zip"):
        ImageDataset(tmp_path / "nowhere.zip")


def test_a_file_that_is_not_a_zip(tmp_path):
    (tmp_path / "d.zip").write_text("hello")
    with pytest.raises(DatasetError, match=r"d\.zip is not a readable zip"):
        ImageDataset(tmp_path / "d.zip")


@pytest.mark.parametrize("size", [(12, 12), (16, 8)])
def test_sizes_stylegan2_cannot_use(tmp_path, size):
    Image.new("RGB", size).save(tmp_path / "a.png")
    with pytest.raises(DatasetError, match=rf"a\.png is {size[0]}x{size[1]}.*square.*power of two"):
        ImageDataset(tmp_path)


def test_resolution_mismatch_names_both(tmp_path):
    with pytest.raises(DatasetError, match=r"data\.resolution=16 but the images in .* are 8x8"):
        ImageDataset(write_zip(tmp_path / "d.zip", random_images(2)), resolution=16)


def test_dataset_json_entry_for_a_missing_image(tmp_path):
    root = write_folder(tmp_path / "d", random_images(2), identities=[0, 1])
    meta = json.loads((root / "dataset.json").read_text())
    meta["identities"].append(["00000/gone.png", 2])
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r'dataset\.json.*"identities" has an entry for 00000/gone\.png'):
        ImageDataset(root)


def test_image_missing_from_the_table(tmp_path):
    root = write_folder(tmp_path / "d", random_images(3), labels=[0, 1, 2])
    meta = json.loads((root / "dataset.json").read_text())
    del meta["labels"][1]
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r'img00000001\.png has no entry in "labels" of .*dataset\.json'):
        ImageDataset(root, use_labels=True)


@pytest.mark.parametrize("meta, match", [
    ("{not json", "not valid JSON"),
    ('{"labels": {"a": 1}}', '"labels" must be a list'),
    ('{"identities": [["00000/img00000000.png", "bob"]]}', "identity of 00000/img00000000.png is bob"),
    ('{"labels": [["00000/img00000000.png", 1.5]]}', "label of 00000/img00000000.png is 1.5"),
])
def test_malformed_dataset_json(tmp_path, meta, match):
    root = write_folder(tmp_path / "d", random_images(1))
    (root / "dataset.json").write_text(meta)
    with pytest.raises(DatasetError, match=match):
        ImageDataset(root, use_labels=True)


def test_zip_layout_is_the_official_one(tmp_path):
    # What the official ImageFolderDataset does with a zip: sorted image names, then
    # dict(dataset.json["labels"])[name] for each. Our writer must give it 00000/img%08d.png names.
    arrays = random_images(1001, size=4)
    path = write_zip(tmp_path / "d.zip", arrays, labels=[i % 3 for i in range(1001)],
                     identities=[i // 2 for i in range(1001)])
    with zipfile.ZipFile(path) as z:
        names = sorted(n for n in z.namelist() if n.endswith(".png"))
        meta = json.loads(z.read("dataset.json"))
        last = np.asarray(Image.open(z.open("00001/img00001000.png")))
    assert names[0] == "00000/img00000000.png" and names[-1] == "00001/img00001000.png" and len(names) == 1001
    assert set(meta) == {"labels", "identities"}
    official_labels = [dict(meta["labels"])[n] for n in names]
    assert official_labels == [i % 3 for i in range(1001)]
    np.testing.assert_array_equal(last, arrays[1000])
    ds = ImageDataset(path, use_labels=True)
    assert ds.get_identity(1000) == 500 and ds.label_dim == 3
