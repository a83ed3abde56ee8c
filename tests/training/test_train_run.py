"""A short SynthFaces run learns (D separates reals from fakes, fakes move towards the data) and
writes a complete run folder: config, TensorBoard events, stats.jsonl, grids and a snapshot."""
import json

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.training.tiny import tiny_config
from training import loop, rundir
from training.cli import main
from training.data.loader import open_dataset
from training.distributed import Dist


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("short")
    cfg = tiny_config(tmp, "train.kimg=0.6", "train.batch=8", "train.tick_kimg=0.1", "train.image_kimg=0.3",
                      "train.snapshot_kimg=0.3", "optim.g_lr=0.005", "optim.d_lr=0.005", "loss.r1_gamma=0.1")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    dataset = open_dataset(cfg.data)
    init = loop.build_state(cfg, dataset, Dist(), loop.Reporter(None))
    state = loop.train(cfg, Dist(), run_dir)
    return cfg, run_dir, dataset, init, state


def fake_images(state, n=64):
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return state.G_ema(torch.randn([n, state.G.z_dim], generator=g), None, noise_mode="const")


def test_losses_move_from_their_start(short_run):
    _, run_dir, _, _, _ = short_run
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert len(stats) == 6 and stats[-1]["nimg"] == 600
    d_first, d_last = stats[0]["Loss/D/loss"], stats[-1]["Loss/D/loss"]
    assert d_first > 1.0  # about 2 log 2 while D cannot tell reals from fakes yet
    assert d_last < d_first - 0.1, (d_first, d_last)
    # G's regularizer: path lengths settle to their running mean, so the penalty falls.
    assert stats[-1]["Loss/pl_penalty"] < 0.5 * stats[0]["Loss/pl_penalty"]
    for s in stats:
        assert all(np.isfinite(v) for v in s.values())


def test_fakes_move_towards_the_data(short_run):
    """Per-channel pixel mean and std of G_ema's fakes approach those of the reals."""
    _, _, dataset, init, state = short_run
    reals = torch.as_tensor(np.stack([dataset[i][0] for i in range(len(dataset))])).float() / 127.5 - 1

    def gap(imgs):
        return ((imgs.mean([0, 2, 3]) - reals.mean([0, 2, 3])).abs().sum() +
                (imgs.std([0, 2, 3]) - reals.std([0, 2, 3])).abs().sum()).item()
    before, after = gap(fake_images(init)), gap(fake_images(state))
    assert after < 0.5 * before, (before, after)


def test_run_folder_contents(short_run):
    cfg, run_dir, _, _, state = short_run
    assert (run_dir / "config.yaml").read_text().count("kimg: 0.6") == 1
    assert (run_dir / "images" / "reals.png").is_file()
    grids = sorted(p.name for p in (run_dir / "images").glob("fakes-*.png"))
    assert grids == ["fakes-0000000000.png", "fakes-0000000304.png", "fakes-0000000600.png"]
    snaps = rundir.list_snapshots(run_dir / "checkpoints")
    assert [p.name for p in snaps] == ["snapshot-0000000304.pt", "snapshot-0000000600.pt"]


def test_tensorboard_events_read_back(short_run):
    _, run_dir, _, _, _ = short_run
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    for tag in ("Loss/G/loss", "Loss/D/loss", "Loss/r1_penalty", "Loss/pl_penalty", "Timing/sec_per_kimg",
                "Resources/peak_mem_gb", "Progress/kimg"):
        assert tag in tags["scalars"], tag
    steps = [e.step for e in events.Scalars("Loss/D/loss")]
    assert steps == sorted(steps) and steps[-1] == 600  # the step axis is images seen
    assert "fakes" in tags["images"]
    stats_last = json.loads((run_dir / "stats.jsonl").read_text().splitlines()[-1])
    assert events.Scalars("Loss/D/loss")[-1].value == pytest.approx(stats_last["Loss/D/loss"], rel=1e-6)


def test_generate_reads_a_training_snapshot(short_run, tmp_path):
    _, run_dir, _, _, _ = short_run
    snap = rundir.list_snapshots(run_dir / "checkpoints")[-1]
    assert main(["generate", "--network", str(snap), "--seeds", "0-1", "--outdir", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.png"))) == 2


def test_every_json_a_run_writes_is_strict(short_run):
    """stats.jsonl is read by tools that reject NaN and Infinity; a non-finite number is written as null."""
    _, run_dir, _, _, _ = short_run

    def refuse(constant):
        raise ValueError(f"{constant} in stats.jsonl")
    lines = (run_dir / "stats.jsonl").read_text().splitlines()
    assert lines and all(isinstance(json.loads(line, parse_constant=refuse), dict) for line in lines)


def refuse_constant(constant):
    raise ValueError(f"{constant} is not strict JSON")


def test_reporter_writes_non_finite_values_as_null(tmp_path):
    from training.report import Reporter
    reporter = Reporter(tmp_path)
    reporter.report("Loss/G/loss", float("nan"))
    reporter.flush(8, {"Progress/kimg": 0.008, "Loss/inf": float("inf")})
    reporter.close()
    line = json.loads((tmp_path / "stats.jsonl").read_text(), parse_constant=refuse_constant)
    assert line == {"nimg": 8, "Loss/G/loss": None, "Progress/kimg": 0.008, "Loss/inf": None}
