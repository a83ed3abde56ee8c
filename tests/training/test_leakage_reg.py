"""The leakage regularizer in training (leakage_reg:, leak_step): it runs lazily and logs, its bank is
cached and rebuilt when the data or the matcher version changes, its config errors name the key, and
under DP the private bank's release is in the ledger at the Gaussian mechanism's epsilon
(dp-accounting), once per run, resume included."""
import json
import shutil

import dp_accounting
import numpy as np
import pytest
import torch
from dp_accounting import rdp

from leakguard.matchers.calibrate import calibrate, calibration_path, save_calibration
from leakguard.matchers.synth import SynthMatcher
from tests.training.dp.test_dp_training import DP, oracle_epsilon
from tests.training.tiny import tiny_config
from training import loop, rundir
from training.cli import main
from training.config import ConfigError
from training.distributed import Dist
from training.dp.keys import IDENTITY_BANK
from training.leakage import build_leakage
from training.report import Reporter
from training.state import build_state, lazy_ratio
from training.synthfaces import SynthFaces


@pytest.fixture(scope="module")
def weights(tmp_path_factory, synth_matcher_weights):
    """The session's synth matcher with a calibration file beside it (100 other people)."""
    root = tmp_path_factory.mktemp("leak_weights")
    path = root / "synth.pt"
    shutil.copy(synth_matcher_weights, path)
    m = SynthMatcher(weights=path)
    people = SynthFaces(32, num_identities=100, images_per_identity=5, identity_offset=300, seed=0)
    save_calibration(calibration_path(path), calibrate(m.embed(torch.from_numpy(people.render_all().copy())),
                                                       people.identities, matcher=m.version))
    return path


def leak_config(tmp_path, weights, *overrides):
    return tiny_config(tmp_path, "leakage_reg.weight=1.0", f"leakage_reg.matchers=[synth={weights}]",
                       "leakage_reg.interval=2", f"leakage_reg.cache={tmp_path / 'cache'}", *overrides)


def test_leak_step_runs_every_interval_and_logs_the_penalty(tmp_path, weights):
    cfg = leak_config(tmp_path, weights, "train.kimg=0.016", "leakage_reg.start_kimg=0.004")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    state = loop.train(cfg, Dist(), run_dir)
    stats = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    logged = [s for s in stats if "Loss/leak_reg" in s]
    assert logged and all(np.isfinite(s["Loss/leak_reg"]) and s["Loss/leak_reg"] >= 0 for s in logged)
    assert all(0 <= s["Leakage/synth/above_threshold"] <= 1 for s in logged)
    # rounds 0..3 of 4 images; start at 4 images and every 2nd round: rounds 2 only (round 0 is before the start)
    assert state.leakage.due(2, 8) and not state.leakage.due(0, 0) and not state.leakage.due(3, 12)
    # Adam rescaled for two lazy regularizers on G (path length every 2, leakage every 2)
    assert state.opt_G.param_groups[0]["lr"] == pytest.approx(cfg.optim.g_lr * lazy_ratio(2, 2))
    assert lazy_ratio(2, 2) == pytest.approx(0.5) and lazy_ratio(4) == 0.8 and lazy_ratio(4, 0) == 0.8


def test_leak_step_changes_G_and_only_G(tmp_path, weights):
    from training.data.loader import open_dataset
    from training.steps import fake_chunks, leak_step
    cfg = leak_config(tmp_path, weights, "leakage_reg.margin=2.0")     # tau - 2 < every score: all penalised
    dataset = open_dataset(cfg.data)
    state = build_state(cfg, dataset, Dist(), Reporter(None))
    state.leakage = build_leakage(cfg, dataset, state)
    G0 = [p.detach().clone() for p in state.G.parameters()]
    D0 = [p.detach().clone() for p in state.D.parameters()]
    net0 = [p.detach().clone() for p in state.leakage.penalties[0].matcher.net.parameters()]
    leak_step(state, fake_chunks(state), gain=2)
    assert any(not torch.equal(a, b) for a, b in zip(G0, state.G.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(D0, state.D.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(net0, state.leakage.penalties[0].matcher.net.parameters()))
    assert all(torch.isfinite(p).all() for p in state.G.parameters())


def test_the_bank_is_cached_and_rebuilt_when_data_or_matcher_change(tmp_path, weights, monkeypatch):
    from training.data.loader import open_dataset
    calls = []
    original = SynthMatcher.embed_batch
    monkeypatch.setattr(SynthMatcher, "embed_batch", lambda self, x: calls.append(len(x)) or original(self, x))

    def build(*overrides):
        cfg = leak_config(tmp_path, weights, *overrides)
        dataset = open_dataset(cfg.data)
        calls.clear()
        leak = build_leakage(cfg, dataset, build_state(cfg, dataset, Dist(), Reporter(None)))
        return sum(calls), leak.penalties[0].bank
    first, bank = build()
    assert first == 24 and len(bank.rows) == 24 and bank.mode == "images"   # 6 people x 4 images embedded once
    _, centroids = build("leakage_reg.bank=centroid")
    assert len(centroids.rows) == 6
    again, bank2 = build()
    assert again == 0 and torch.equal(bank.rows, bank2.rows)   # from the embedding store
    other_data, _ = build("data.synthfaces.seed=1")
    assert other_data == 24
    other = tmp_path / "other" / "synth.pt"                    # other weights: another matcher version
    other.parent.mkdir()
    shutil.copy(weights, other)
    with torch.no_grad():
        state = torch.load(other, weights_only=True)
        key = next(k for k, v in state["state_dict"].items() if v.is_floating_point())
        state["state_dict"][key] = state["state_dict"][key] + 0.01
        torch.save(state, other)
    m = SynthMatcher(weights=other)
    assert m.version != SynthMatcher(weights=weights).version
    cfg = leak_config(tmp_path, other, "leakage_reg.threshold_source=training")
    calls.clear()
    dataset = open_dataset(cfg.data)
    build_leakage(cfg, dataset, build_state(cfg, dataset, Dist(), Reporter(None)))
    assert sum(calls) == 24


@pytest.mark.parametrize("overrides, message", [
    (["leakage_reg.weight=-1"], "leakage_reg.weight=-1.0 is not valid"),
    (["leakage_reg.matchers=[dlib=x.pt]"], "leakage_reg.matchers='dlib=x.pt' is not valid; expected a differentiable"),
    (["leakage_reg.matchers=[synth]"], "leakage_reg.matchers='synth' is not valid; expected synth=WEIGHTS"),
    (["leakage_reg.matchers=[]"], "leakage_reg.matchers=.* is not valid"),
    (["leakage_reg.bank=people"], "leakage_reg.bank='people' is not valid"),
    (["leakage_reg.interval=0"], "leakage_reg.interval=0 is not valid"),
    ([*DP], "leakage_reg.bank_noise=None with privacy.unit='identity'.*set leakage_reg.bank_noise"),
    ([*DP, "leakage_reg.bank_noise=2", "leakage_reg.bank=centroid", "leakage_reg.threshold_source=training"],
     "leakage_reg.threshold_source"),
    ([*DP, "leakage_reg.bank_noise=2"], "leakage_reg.bank='images' is not valid.*set leakage_reg.bank=centroid"),
])
def test_config_errors_name_the_key(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path, "leakage_reg.weight=1", "leakage_reg.matchers=[synth=s.pt]", *overrides)


@pytest.mark.parametrize("case, message", [
    ("missing_weights", "leakage_reg.matchers: synth's weights file not found"),
    ("missing_calibration", "leakage_reg.matchers: synth has no calibration file .*threshold_source=training"),
    ("uncalibrated_fmr", "leakage_reg.fmr=0.005: .*no operating point"),
])
def test_missing_files_stop_training_at_start_naming_the_key(tmp_path, weights, capsys, case, message):
    bare = tmp_path / "bare.pt"
    shutil.copy(weights, bare)
    path = {"missing_weights": tmp_path / "nope.pt", "missing_calibration": bare, "uncalibrated_fmr": weights}[case]
    extra = ["leakage_reg.fmr=0.005"] if case == "uncalibrated_fmr" else []
    argv = ["train", "--config", "configs/synthfaces32.yaml", f"run_dir={tmp_path / 'runs'}", "train.device=cpu",
            "leakage_reg.weight=1", f"leakage_reg.matchers=[synth={path}]", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and __import__("re").search(message, err), err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def gaussian_epsilon(sigma, releases, delta):
    acc = rdp.RdpAccountant()
    acc.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.GaussianDpEvent(sigma), releases))
    return acc.get_epsilon(delta)


def test_a_private_bank_is_in_the_ledger_at_the_gaussian_mechanisms_epsilon(tmp_path, weights):
    from training.data.loader import open_dataset
    cfg = leak_config(tmp_path, weights, *DP, "leakage_reg.bank_noise=3.0", "leakage_reg.bank=centroid")
    dataset = open_dataset(cfg.data)
    state = build_state(cfg, dataset, Dist(), Reporter(None))
    leak = build_leakage(cfg, dataset, state)
    ledger = state.privacy.ledger
    assert leak.penalties[0].bank.private and len(leak.penalties[0].bank.rows) == 6
    assert ledger.steps(IDENTITY_BANK) == 1
    assert ledger.epsilon() == pytest.approx(gaussian_epsilon(3.0, 1, ledger.delta), rel=1e-3)
    # the same key draws the same bank (a resume rebuilds it); the ledger is not charged twice
    again = build_leakage(cfg, dataset, state)
    assert torch.equal(again.penalties[0].bank.rows, leak.penalties[0].bank.rows)
    assert ledger.steps(IDENTITY_BANK) == 1


def test_a_private_run_counts_the_bank_once_with_its_d_steps_and_resumes(tmp_path, weights):
    cfg = leak_config(tmp_path, weights, *DP, "leakage_reg.bank_noise=3.0", "leakage_reg.bank=centroid",
                      "train.kimg=0.008", "train.snapshot_kimg=0.004")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    state = loop.train(cfg, Dist(), run_dir)
    ledger = state.privacy.ledger
    q, steps = state.privacy.q, ledger.steps("dp_d_step")
    acc = rdp.RdpAccountant()
    acc.compose(dp_accounting.GaussianDpEvent(3.0))
    acc.compose(dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(
        q, dp_accounting.GaussianDpEvent(1.0)), steps))
    assert ledger.epsilon() == pytest.approx(acc.get_epsilon(ledger.delta), rel=1e-2)
    assert ledger.epsilon() > oracle_epsilon(1.0, q, steps, ledger.delta)
    snap = rundir.list_snapshots(run_dir / rundir.CHECKPOINTS)[0]
    cfg2 = leak_config(tmp_path, weights, *DP, "leakage_reg.bank_noise=3.0", "leakage_reg.bank=centroid",
                       "train.kimg=0.012", "train.snapshot_kimg=0.004")
    resumed = loop.train(cfg2, Dist(), run_dir, resume=snap)
    assert resumed.privacy.ledger.steps(IDENTITY_BANK) == 1
    assert resumed.privacy.ledger.steps("dp_d_step") == 3
