"""train.init and train.freeze_d: a run starts from a pretrained model's G, D and G_ema (w_avg included) with
fresh optimizers and 0 images, records the file's path and SHA-256 in config.yaml and every checkpoint, and
keeps them through a resume; another architecture, a missing or corrupt file, and under DP an init that saw
the private data are refused in one line, writing nothing. Frozen D blocks never change (bit for bit, plain
and private), per-unit gradients with frozen blocks equal a batch-of-one loop in float64 on the trained
parameters, and freezing changes nothing in the accounting."""
import hashlib

import pytest
import torch
import yaml

from tests.training.dp.test_dp_training import DP, oracle_epsilon
from tests.training.dp.test_per_unit import batch_of_one, make_D, units_input
from tests.training.tiny import TINY, tiny_config
from training import loop, rundir
from training.checkpoint import save_networks
from training.cli import main
from training.distributed import Dist
from training.dp import per_layer, per_unit
from training.dp.per_unit import per_unit_grads, trainable
from training.state import frozen_parameters

PUBLIC = ["data.synthfaces.identity_offset=5000"]            # other people than the tiny default's 0..5
PRIVATE_DP = [*DP, "augment.mode=noaug"]


def train(tmp_path, name, *overrides, resume=None):
    cfg = tiny_config(tmp_path, f"name={name}", *overrides)
    run_dir = rundir.run_dir_of(resume) if resume else rundir.new_run_dir(cfg.run_dir, cfg.name)
    return loop.train(cfg, Dist(), run_dir, resume), run_dir


@pytest.fixture(scope="module")
def public(tmp_path_factory):
    """A 'public' model: trained on other SynthFaces people; its final snapshot is the init."""
    root = tmp_path_factory.mktemp("public")
    state, run_dir = train(root, "public", *PUBLIC, "train.kimg=0.008", "train.snapshot_kimg=0.008")
    return rundir.list_snapshots(run_dir / "checkpoints")[-1], state


def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_run_starts_from_the_init_with_fresh_optimizers_and_records_it(tmp_path, public):
    snapshot, trained = public
    cfg = tiny_config(tmp_path, f"train.init={snapshot}", "train.kimg=0.004")
    built = loop.build_run(cfg, Dist(), None)
    state = built.state
    assert same(state.G, trained.G) and same(state.D, trained.D) and same(state.G_ema, trained.G_ema)
    assert torch.equal(state.G.mapping.w_avg, trained.G.mapping.w_avg)
    assert state.nimg == 0 and state.round == 0 and not state.opt_G.state and not state.opt_D.state
    sha = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    assert state.init == {"path": str(snapshot), "sha256": sha}

    done, run_dir = train(tmp_path, "fine", f"train.init={snapshot}", "train.kimg=0.008", "train.snapshot_kimg=0.004")
    assert (run_dir / "config.yaml").read_text().startswith(f"# train.init {snapshot} sha256 {sha}\n")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["init"] == str(snapshot)
    first = rundir.list_snapshots(run_dir / "checkpoints")[0]
    assert torch.load(first, weights_only=True)["extra"]["init"]["sha256"] == sha
    resumed, _ = train(tmp_path, "fine", f"train.init={snapshot}", "train.kimg=0.012", "train.snapshot_kimg=0.004",
                       resume=rundir.list_snapshots(run_dir / "checkpoints")[-1])
    assert resumed.nimg == 12 and resumed.init["sha256"] == sha       # a resumed fine-tune keeps its init
    last = rundir.list_snapshots(run_dir / "checkpoints")[-1]
    assert torch.load(last, weights_only=True)["extra"]["init"]["sha256"] == sha


def test_an_init_from_an_official_style_network_file_works_too(tmp_path, public):
    _, trained = public
    path = tmp_path / "networks.pt"
    save_networks(path, {"G": trained.G, "D": trained.D, "G_ema": trained.G_ema})
    state = loop.build_run(tiny_config(tmp_path, f"train.init={path}"), Dist(), None).state
    assert same(state.G_ema, trained.G_ema) and state.init["path"] == str(path)


@pytest.mark.parametrize("case, message", [
    ("missing", "train.init="),
    ("folder", "is a folder"),
    ("corrupt", "not a LeakGuard checkpoint"),
    ("other architecture", "an architecture that differs"),
    ("generator only", "holds no D"),
])
def test_a_bad_init_is_one_line_and_writes_nothing(tmp_path, public, capsys, case, message):
    snapshot, trained = public
    path = {"missing": tmp_path / "missing.pt", "folder": tmp_path, "corrupt": tmp_path / "junk.pt",
            "other architecture": snapshot, "generator only": tmp_path / "g.pt"}[case]
    (tmp_path / "junk.pt").write_bytes(b"PK not a zip")
    save_networks(tmp_path / "g.pt", {"G": trained.G, "G_ema": trained.G_ema})
    extra = ["model.channel_max=32"] if case == "other architecture" else []
    runs = tmp_path / "runs"
    code = main(["train", *TINY, f"run_dir={runs}", f"train.init={path}", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len([x for x in err.splitlines() if "error:" in x]) == 1, err[-1500:]
    assert not runs.exists() or not any(runs.iterdir())
    if case != "other architecture":   # --dry-run catches it too (the tensors themselves are matched at the start)
        assert main(["train", "--dry-run", *TINY, f"run_dir={runs}", f"train.init={path}", *extra]) == 2


def test_under_dp_an_init_that_saw_the_private_data_is_refused(tmp_path, capsys):
    _, run_dir = train(tmp_path, "private", *PRIVATE_DP, "train.kimg=0.004", "train.snapshot_kimg=0.004")
    release = run_dir / "release.pt"
    _, plain_dir = train(tmp_path, "plain_same_data", "train.kimg=0.004", "train.snapshot_kimg=0.004")
    plain = rundir.list_snapshots(plain_dir / "checkpoints")[-1]
    for init, how in ((release, "a private run of"), (plain, "trained on")):
        code = main(["train", *TINY, f"run_dir={tmp_path / 'r2'}", *PRIVATE_DP, f"train.init={init}"])
        err = capsys.readouterr().err
        assert code == 2 and f"{how} this run's private data" in err and "--resume" in err, err[-1500:]
        assert main(["train", "--dry-run", *TINY, f"run_dir={tmp_path / 'r2'}", *PRIVATE_DP, f"train.init={init}"]) == 2
        capsys.readouterr()
    assert not (tmp_path / "r2").exists()


def test_a_dp_fine_tune_from_a_public_init_names_it_and_its_epsilon_is_the_schedules(tmp_path, public):
    snapshot, _ = public
    state, run_dir = train(tmp_path, "dpft", *PRIVATE_DP, f"train.init={snapshot}", "train.freeze_d=1",
                           "train.kimg=0.008", "train.snapshot_kimg=0.008")
    record = torch.load(run_dir / "release.pt", weights_only=True)["extra"]["privacy"]
    assert record["init"]["path"] == str(snapshot) and "never saw the private data" in record["init"]["assumption"]
    frozen = frozen_parameters(state.D, 1)
    assert record["trained_parameters"] == sum(p.numel() for n, p in state.D.named_parameters() if n not in frozen)
    p = state.privacy
    assert record["epsilon"] == pytest.approx(oracle_epsilon(p.sigma, p.q, p.ledger.steps("dp_d_step"),
                                                             p.ledger.delta), rel=1e-3)


@pytest.mark.parametrize("private", [False, True])
def test_frozen_blocks_do_not_change_and_the_rest_trains(tmp_path, public, private):
    snapshot, trained = public
    extra = PRIVATE_DP if private else []
    state, _ = train(tmp_path, "frozen", *extra, f"train.init={snapshot}", "train.freeze_d=2", "train.kimg=0.008")
    frozen = frozen_parameters(state.D, 2)
    start = dict(trained.D.named_parameters())
    assert frozen and all(n.startswith(("b32.", "b16.")) for n in frozen)
    for name, param in state.D.named_parameters():
        unchanged = torch.equal(param.detach(), start[name].detach())
        assert unchanged == (name in frozen), name   # frozen: bit for bit; trained: moved


PER_LAYER_GRADS = per_layer.unit_grads
TRAINED_PART_GRADS_R1 = per_unit._trained_part_grads_r1


@pytest.mark.parametrize("architecture, c_dim, mbstd, blocks, r1", [
    ("resnet", 0, 0, 1, 0.35),   # R1: its input gradient back through the frozen block, by one vjp and one jvp
    ("resnet", 0, 0, 1, 0.0),    # no R1: per layer, the frozen block without autograd
    ("resnet", 0, 1, 2, 0.0),    # minibatch-stddev groups within a unit, in the (trained) epilogue
    ("resnet", 0, 1, 2, 0.35),
    ("skip", 0, 0, 2, 0.0),      # the skip image goes on past the frozen blocks
    ("skip", 3, 1, 1, 0.35),
    ("orig", 3, 0, 1, 0.0),      # conditional D
    ("orig", 3, 0, 2, 0.35),
])
def test_per_unit_gradients_with_frozen_blocks_equal_a_batch_of_one_loop(architecture, c_dim, mbstd, blocks, r1,
                                                                         monkeypatch):
    D = make_D(architecture, c_dim=c_dim, mbstd_channels=mbstd)
    frozen = frozen_parameters(D, blocks)
    for name, param in D.named_parameters():
        param.requires_grad_(name not in frozen)
    img, c, weight = units_input(c_dim=c_dim)
    calls = []
    monkeypatch.setattr(per_layer, "unit_grads", lambda *a: calls.append("no R1") or PER_LAYER_GRADS(*a))
    monkeypatch.setattr(per_unit, "_trained_part_grads_r1", lambda *a: calls.append("R1") or TRAINED_PART_GRADS_R1(*a))
    got = per_unit_grads(D, img, c, weight, r1)
    assert per_unit.frozen_blocks(D) == D.block_resolutions[:blocks] and calls == ["R1" if r1 else "no R1"]
    expected = batch_of_one(D, img, c, weight, r1)
    names = [n for n, _ in trainable(D)]
    assert names and not set(names) & frozen and len(got) == len(expected) == len(names)
    for n, a, b in zip(names, got, expected):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9, msg=n)


def test_freeze_d_out_of_range_is_refused(tmp_path, capsys):
    assert main(["train", *TINY, f"run_dir={tmp_path / 'runs'}", "train.freeze_d=4"]) == 2
    assert "train.freeze_d=4 is not valid; expected 0 to 3" in capsys.readouterr().err
