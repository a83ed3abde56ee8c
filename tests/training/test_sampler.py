"""The data order is a function of (seed, round): independent of ranks, accumulation and resume."""
import pytest

from training.data.sampler import RoundSampler


def rounds(sampler, k):
    it = iter(sampler)
    return [next(it) for _ in range(k)]


def test_every_image_once_per_epoch():
    s = RoundSampler(size=12, batch=4, batch_gpu=4, rank=0, world=1, seed=3)
    seen = sum(rounds(s, 3), [])
    assert sorted(seen) == list(range(12))
    assert sum(rounds(s, 6)[3:], []) != seen  # the next epoch is a new permutation


def test_split_over_ranks_and_accumulation_covers_the_same_images():
    one = rounds(RoundSampler(20, batch=8, batch_gpu=8, rank=0, world=1, seed=0), 5)
    accum = rounds(RoundSampler(20, batch=8, batch_gpu=4, rank=0, world=1, seed=0), 5)
    r0 = rounds(RoundSampler(20, batch=8, batch_gpu=4, rank=0, world=2, seed=0), 5)
    r1 = rounds(RoundSampler(20, batch=8, batch_gpu=4, rank=1, world=2, seed=0), 5)
    for a, b, x, y in zip(one, accum, r0, r1):
        assert a == b == x + y  # chunk c of a round goes to rank c % world


def test_resume_at_a_round_continues_the_stream():
    full = rounds(RoundSampler(10, batch=4, batch_gpu=2, rank=0, world=1, seed=1), 7)
    resumed = rounds(RoundSampler(10, batch=4, batch_gpu=2, rank=0, world=1, seed=1, start_round=4), 3)
    assert resumed == full[4:]


def test_batch_must_divide():
    with pytest.raises(ValueError, match="train.batch=6 must be a multiple of train.batch_gpu=4 x 1"):
        RoundSampler(10, batch=6, batch_gpu=4, rank=0, world=1, seed=0)
