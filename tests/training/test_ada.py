"""The ADA controller: p rises while D is overconfident on reals (r_t > target), falls otherwise, by
batch * interval / (kimg * 1000) per update, never below 0; its state survives a round trip.
In training, D overfitting a tiny dataset raises p from 0."""
import json

import pytest
import torch

from tests.training.tiny import tiny_config
from training import loop, rundir
from training.augment.ada import AdaController
from training.augment import make_augment_pipe
from training.distributed import Dist

BATCH = 16


def drive(ada, pipe, logits_per_step, steps):
    """`steps` D steps whose real logits are `logits_per_step` each; returns p after each update."""
    ps = []
    for _ in range(steps):
        ada.accumulate(logits_per_step)
        p = ada.update(pipe, BATCH)
        if p is not None:
            ps.append(p)
    return ps


def test_p_rises_on_an_overfitting_signal_and_falls_otherwise():
    pipe = make_augment_pipe("bgc")
    ada = AdaController(target=0.6, interval=4, kimg=0.5)
    step = BATCH * 4 / 500  # 0.128 per update
    overfit = torch.full([BATCH, 1], 3.0)        # D says "real" on every real: r_t = 1 > 0.6
    ps = drive(ada, pipe, overfit, 12)
    assert ps == pytest.approx([step, 2 * step, 3 * step])
    assert ada.rt == 1.0
    assert pipe.p.item() == pytest.approx(3 * step)

    healthy = torch.tensor([[1.0]] * 10 + [[-1.0]] * 6)  # r_t = (10 - 6) / 16 = 0.25 < 0.6
    ps = drive(ada, pipe, healthy, 8)
    assert ps == pytest.approx([2 * step, step])
    assert ada.rt == pytest.approx(0.25)
    ps = drive(ada, pipe, healthy, 8)
    assert ps == [0.0, 0.0]                      # clamped at zero
    assert pipe.p.item() == 0.0


def test_signs_not_magnitudes_and_the_target_itself_keeps_p():
    pipe = make_augment_pipe("b")
    ada = AdaController(target=0.5, interval=1, kimg=1, initial_p=0.3)
    ada.accumulate(torch.tensor([[100.0], [0.1], [0.2], [-50.0]]))  # r_t = (3 - 1) / 4 = 0.5
    assert ada.update(pipe, BATCH) == pytest.approx(0.3)
    assert ada.rt == 0.5


def test_update_only_every_interval_and_without_logits():
    pipe = make_augment_pipe("b")
    ada = AdaController(interval=3, kimg=1)
    assert [ada.update(pipe, BATCH) for _ in range(3)] == [None, None, None]  # nothing accumulated
    ada.accumulate(torch.ones([4, 1]))
    assert ada.update(pipe, BATCH) is None and ada.update(pipe, BATCH) is None
    assert ada.update(pipe, BATCH) == pytest.approx(BATCH * 3 / 1000)


def test_reduce_sums_the_signs_over_processes():
    """With a reduce that adds a second rank's (sum, count), r_t is over both ranks' logits."""
    pipe = make_augment_pipe("b")
    ada = AdaController(target=0.6, interval=1, kimg=1)
    other_rank = torch.tensor([-4.0, 4.0], dtype=torch.float64)  # four reals, all judged fake
    ada.accumulate(torch.ones([4, 1]))
    assert ada.update(pipe, BATCH, reduce=lambda stats: stats + other_rank) == 0.0
    assert ada.rt == 0.0


def test_state_round_trip_continues_identically():
    pipe_a, pipe_b = make_augment_pipe("b"), make_augment_pipe("b")
    a = AdaController(interval=2, kimg=0.1)
    drive(a, pipe_a, torch.ones([3, 1]), 5)      # mid-interval: one step's signs pending
    b = AdaController(interval=2, kimg=0.1)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))  # plain numbers only
    mixed = torch.tensor([[1.0], [-1.0], [1.0]])
    assert drive(a, pipe_a, mixed, 5) == drive(b, pipe_b, mixed, 5)
    with pytest.raises(KeyError, match="missing"):
        b.load_state_dict({"p": 0.0})


@pytest.mark.parametrize("kwargs, match", [(dict(target=2.0), "target"), (dict(interval=0), "interval"),
                                           (dict(kimg=0), "kimg"), (dict(initial_p=-0.1), "initial_p")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AdaController(**kwargs)


def test_training_on_few_images_raises_p(tmp_path):
    """Eight real images and a D that learns fast: it soon calls every real real, and ADA reacts."""
    cfg = tiny_config(tmp_path, "data.synthfaces.num_identities=2", "data.synthfaces.images_per_identity=4",
                      "augment.mode=ada", "augment.p=0", "augment.interval=1", "augment.speed_kimg=1",
                      "optim.d_lr=0.01", "loss.r1_gamma=0", "train.kimg=0.2", "train.batch=8")
    state = loop.train(cfg, Dist(), rundir.new_run_dir(cfg.run_dir, cfg.name))
    assert state.augment.p.item() >= 0.04  # at least 5 more rises than falls of 0.008
