"""The Matcher interface: uint8 and [-1, 1] inputs agree, embed() batches without changing results,
embeddings are unit rows, bad inputs are named, and TorchMatcher's alignments crop as documented."""
import numpy as np
import pytest
import torch
from torch import nn

from leakguard.matchers import align
from leakguard.matchers.base import to_unit_range
from leakguard.matchers.torch_matcher import TorchMatcher


class Flatten(TorchMatcher):
    """A linear 'network' on 16x16 crops: every pixel counts, so any preprocessing change shows."""
    name = "flatten"
    input_size = (16, 16)
    template = align.centred(align.ARCFACE_112) * 16 / 112

    def __init__(self, **kw):
        torch.manual_seed(1)
        super().__init__(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 8)), **kw)

    @property
    def embedding_dim(self):
        return 8


def test_uint8_and_float_inputs_give_the_same_embeddings():
    img = torch.randint(0, 256, [3, 3, 32, 32], dtype=torch.uint8)
    m = Flatten()
    torch.testing.assert_close(m.embed(img), m.embed(img.float() / 127.5 - 1))


def test_embed_batches_equal_one_pass_and_rows_are_unit():
    img = torch.rand(7, 3, 32, 32) * 2 - 1
    one = Flatten(batch_size=7).embed(img)
    many = Flatten(batch_size=2).embed(img)
    torch.testing.assert_close(one, many, rtol=1e-5, atol=1e-6)
    assert one.dtype == torch.float32 and one.shape == (7, 8)
    torch.testing.assert_close(one.norm(dim=1), torch.ones(7))
    assert Flatten().embed(torch.zeros(0, 3, 32, 32)).shape == (0, 8)


def test_call_keeps_gradients_to_the_pixels():
    img = (torch.rand(2, 3, 40, 40) * 2 - 1).requires_grad_(True)
    e = Flatten()(img)
    (grad,) = torch.autograd.grad(e[0, 0], img)
    assert torch.isfinite(grad).all() and grad[0].abs().sum() > 0 and grad[1].abs().sum() == 0


def test_alignments():
    img = torch.rand(2, 3, 64, 64) * 2 - 1
    m = Flatten(alignment="none")
    torch.testing.assert_close(m.crop(img[:, :, :16, :16]), img[:, :, :16, :16])  # already the crop size
    assert m.crop(img).shape == (2, 3, 16, 16)
    ffhq = Flatten(alignment="ffhq").crop(img)
    A = align.ffhq_to_template(64, 64, Flatten.template)
    torch.testing.assert_close(ffhq, align.warp(img, A, (16, 16)))
    # 'detect' with a detector that reports FFHQ landmarks crops exactly like 'ffhq'.
    detect = Flatten(alignment="detect", detector=lambda x: np.stack([align.ffhq_landmarks(64, 64)] * len(x)))
    torch.testing.assert_close(detect.crop(img), ffhq, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("images, match", [
    (np.zeros([1, 3, 16, 16]), "torch.Tensor"),
    (torch.zeros(1, 1, 16, 16), r"RGB images \[N, 3, H, W\]"),
    (torch.zeros(3, 16, 16), r"got shape \(3, 16, 16\)"),
    (torch.zeros(1, 3, 16, 16, dtype=torch.int32), "uint8 or float"),
])
def test_bad_images_are_named(images, match):
    with pytest.raises((TypeError, ValueError), match=match):
        to_unit_range(images)


def test_bad_options():
    with pytest.raises(ValueError, match="alignment='sideways'"):
        Flatten(alignment="sideways")
    assert type(Flatten(alignment="detect").detector).__name__ == "DlibLandmarks"  # the default detector
    with pytest.raises(ValueError, match="batch_size=0"):
        Flatten(batch_size=0)
