"""Image sets and the embedding store: lazy batches equal the decoded files, fingerprints follow
content not names, embeddings are computed once per (content, matcher) and equal a direct embed."""
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from leakguard.audit.images import ImageFiles, ImageTensor
from leakguard.audit.store import EmbeddingStore
from leakguard.identity_data import IdentityDataError, read_identity_images
from leakguard.matchers import align
from leakguard.matchers.torch_matcher import TorchMatcher
from training.data.build import export_zip
from training.synthfaces import SynthFaces


class Counting(TorchMatcher):
    """A fixed random projection that counts the images it embeds."""
    name = "counting"
    input_size = (16, 16)
    template = align.centred(align.ARCFACE_112) * 16 / 112
    seen = 0

    def __init__(self, seed=0, **kw):
        torch.manual_seed(seed)
        self.seed = seed
        super().__init__(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 6)), alignment="none", **kw)

    @property
    def embedding_dim(self):
        return 6

    @property
    def version(self):
        return f"counting-{self.seed}"

    def embed_batch(self, images):
        Counting.seen += len(images)
        return super().embed_batch(images)


@pytest.fixture(scope="module")
def faces_zip(tmp_path_factory):
    path = tmp_path_factory.mktemp("faces") / "faces.zip"
    export_zip(path, SynthFaces(resolution=32, num_identities=3, images_per_identity=3, seed=0))
    return path


def test_zip_batches_and_identities_equal_the_eager_reader(faces_zip):
    files = ImageFiles(faces_zip)
    images, ids = read_identity_images(faces_zip)
    assert len(files) == 9 and files.has_identities
    torch.testing.assert_close(torch.cat(list(files.batches(4))), images)
    np.testing.assert_array_equal(files.identities, ids.numpy())


def test_fingerprint_follows_content(faces_zip, tmp_path):
    copy = tmp_path / "renamed.zip"
    shutil.copy(faces_zip, copy)
    assert ImageFiles(copy).fingerprint == ImageFiles(faces_zip).fingerprint
    other = tmp_path / "other.zip"
    export_zip(other, SynthFaces(resolution=32, num_identities=3, images_per_identity=3, seed=1))
    assert ImageFiles(other).fingerprint != ImageFiles(faces_zip).fingerprint
    images, _ = read_identity_images(faces_zip)
    assert ImageTensor(images).fingerprint == ImageTensor(images.clone()).fingerprint
    images[0, 0, 0, 0] ^= 1
    assert ImageTensor(images).fingerprint != ImageTensor(images.clone().flip(0)).fingerprint


def test_store_embeds_once_per_content_and_matcher(faces_zip, tmp_path):
    store = EmbeddingStore(tmp_path / "cache")
    m = Counting(batch_size=4)
    Counting.seen = 0
    e = store.embeddings(ImageFiles(faces_zip), m)
    images, _ = read_identity_images(faces_zip)
    np.testing.assert_allclose(e, m.embed(images).numpy(), rtol=1e-6, atol=1e-7)
    assert Counting.seen == 9 + 9
    again = store.embeddings(ImageFiles(faces_zip), m)          # cached: nothing embedded
    assert Counting.seen == 18 and np.array_equal(again, e)
    store.embeddings(ImageTensor(images), m)                    # same pixels, other source: its own entry
    store.embeddings(ImageFiles(faces_zip), Counting(seed=1))  # another matcher version
    assert Counting.seen == 36
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_folder_without_identities_and_empty_folder(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    with pytest.raises(IdentityDataError, match="no images found"):
        ImageFiles(folder)
    from PIL import Image
    Image.fromarray(np.zeros([8, 8, 3], np.uint8)).save(folder / "a.png")
    files = ImageFiles(folder)
    assert not files.has_identities
    with pytest.raises(IdentityDataError, match="no dataset.json"):
        files.identities
    with pytest.raises(FileNotFoundError, match="image set not found"):
        ImageFiles(tmp_path / "nope.zip")
