"""The privacy record is true of the run folder it sits in: a tiny private run with evaluation during
training and the regularizer's private bank writes only files that the record names, as covered or as
not covered, and the covered logs (stats.jsonl, TensorBoard) hold no statistic of a real image: every
scalar in them is a loss on fakes, the penalty against the privately released bank, or a privacy or
progress number."""
import fnmatch
import json

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from leakguard.cli.report import privacy_record
from leakguard.run_report import write_run_report
from tests.fixtures.seams.make_fixture import MATCHER
from tests.training.dp.test_dp_training import DP
from tests.training.tiny import tiny_config
from training import loop, rundir
from training.distributed import Dist

# Scalars a private run may log in the covered files: none reads a real image outside the DP step.
POST_PROCESSING = ("Loss/G/", "Loss/D/fake", "Loss/scores/fake", "Loss/pl_", "Loss/leak_reg", "Leakage/",
                   "Privacy/", "Progress/", "Timing/", "Resources/")
# ... and what they must never hold: statistics of real images (the plain D step's and the evaluation's).
REAL = ("Loss/D/loss", "Loss/scores/real", "Loss/signs/real", "Loss/r1_penalty", "Audit/", "Fidelity/")


def test_every_file_is_named_by_the_record_and_the_covered_logs_hold_no_real_statistic(tmp_path):
    cfg = tiny_config(tmp_path, *DP, "augment.mode=noaug", "train.kimg=0.016", "train.snapshot_kimg=0.008",
                      "eval.every_kimg=0.008", "eval.num_fakes=8", "eval.bootstrap=5", "eval.kid_subsets=2",
                      f"eval.matchers=[synth={MATCHER}]", f"eval.fidelity=[synth={MATCHER}]",
                      f"eval.cache={tmp_path / 'cache'}", "leakage_reg.weight=1.0",
                      f"leakage_reg.matchers=[synth={MATCHER}]", "leakage_reg.interval=2", "leakage_reg.bank=centroid",
                      "leakage_reg.bank_noise=3.0", f"leakage_reg.cache={tmp_path / 'cache'}")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    loop.train(cfg, Dist(), run_dir)
    write_run_report(run_dir, privacy_record(run_dir))           # report.html: the evaluation as a page
    record = torch.load(run_dir / "release.pt", weights_only=True)["extra"]["privacy"]

    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    assert any(f.startswith("events.out.tfevents") for f in files) and "eval.jsonl" in files
    for f in files:
        covered = [g for g in record["covered_files"] if fnmatch.fnmatch(f, g)]
        not_covered = [g for g in record["not_covered_files"] if fnmatch.fnmatch(f, g)]
        assert len(covered) + len(not_covered) == 1, (f, covered, not_covered)
    assert any("eval.jsonl" in line for line in record["not_covered"])

    stats = (run_dir / "stats.jsonl").read_text().splitlines()
    keys = {k for line in stats for k in json.loads(line) if k != "nimg"}
    events = next(run_dir.glob("events.out.tfevents.*"))
    tags = set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    assert "Loss/leak_reg" in keys and "Privacy/epsilon" in keys
    for name in keys | tags:
        assert name.startswith(POST_PROCESSING) and not name.startswith(REAL), name


def test_the_release_holds_no_digest_of_the_private_files(tmp_path):
    cfg = tiny_config(tmp_path, *DP, "augment.mode=noaug", "train.kimg=0.004", "train.snapshot_kimg=0.004")
    run_dir = rundir.new_run_dir(cfg.run_dir, cfg.name)
    state = loop.train(cfg, Dist(), run_dir)
    extra = torch.load(run_dir / "release.pt", weights_only=True)["extra"]
    assert state.dataset_fingerprint is not None and state.dataset_fingerprint not in str(extra)
    snapshot = rundir.list_snapshots(run_dir / "checkpoints")[-1]
    assert torch.load(snapshot, weights_only=True)["extra"]["dataset_fingerprint"] == state.dataset_fingerprint
    assert any("digest of the training files" in line for line in extra["privacy"]["not_covered"])
