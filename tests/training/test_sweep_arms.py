"""Named arms and release arms in a sweep (the headline study's spec): arms planned seed by seed; a release arm
drawing a given generator's fakes or an arm's through the release filter, judged by the same evaluation, its row
equal to its eval.jsonl; a rerun redoes nothing finished; a changed or bad arm refused naming the key."""
import json

import pytest
from omegaconf import OmegaConf

from leakguard.audit.images import ImageFiles
from leakguard.sweep.results import read_rows
from tests.training.test_sweep_run import files_of
from tests.training.tiny import TINY
from training.checkpoint import save_networks
from training.cli import main
from training.cli.generate import random_generator
from training.config import ConfigError
from training.sweep.spec import expand, load_spec
from training.sweep.status import format_status

FILTER_FMR = 0.1


def arms_spec(root, weights, arms: str = None, extra: str = "", name: str = "spec.yaml", seeds="[0, 1]"):
    root.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.from_dotlist(TINY), root / "tiny.yaml")
    if not (root / "public.pt").is_file():
        save_networks(root / "public.pt", {"G_ema": random_generator(32, 0)})
    arms = arms if arms is not None else "arms:\n  plain: []\n  r2: [loss.r1_gamma=2.0]\n"
    path = root / name
    path.write_text("name: tiny-arms\nbase: tiny.yaml\nkimg: 0.016\n"
                    "overrides: [train.snapshot_kimg=0.008, train.tick_kimg=0.008, data.synthfaces.num_identities=30, "
                    "data.synthfaces.images_per_identity=2]\n"  # 30 people: the support rule of FMR 0.1

                    f"eval: {{num_fakes: 12, bootstrap: 20, kid_subsets: 5, matchers: ['synth={weights}'], "
                    f"fidelity: ['synth={weights}'], fmrs: [{FILTER_FMR}], cache: '{root / 'cache'}'}}\n"
                    f"seeds: {seeds}\n" + arms + extra)
    return path


def releases(public, fmr: float = FILTER_FMR) -> str:
    return (f"releases:\n  public: {{generator: '{public}'}}\n"
            f"  filtered: {{from: plain, filter: [synth], fmr: {fmr}, max_candidates: 1000}}\n")


def test_arms_are_planned_seed_by_seed_with_their_overrides_last(tmp_path, synth_matcher_weights):
    spec = load_spec(arms_spec(tmp_path, synth_matcher_weights, extra=releases(tmp_path / "public.pt")))
    trials = expand(spec)
    assert [t.name for t in trials] == ["plain_s0", "r2_s0", "public_s0", "filtered_s0",
                                        "plain_s1", "r2_s1", "public_s1", "filtered_s1"]
    r2 = next(t for t in trials if t.name == "r2_s1")
    assert r2.group == "r2" and r2.overrides == {"arm": "r2"} and r2.config.loss.r1_gamma == 2.0
    assert r2.config.train.seed == 1 and r2.dotlist[-3] == "loss.r1_gamma=2.0"
    plain = next(t for t in trials if t.name == "plain_s0")
    assert plain.config.loss.r1_gamma == 1.0 and plain.release is None
    public = [t for t in trials if t.group == "public"]
    # a given generator draws other fakes for each seed; a filtered arm starts at the arm's own evaluation fakes
    assert [t.release["first_seed"] for t in public] == [0, 12]
    assert {t.release["first_seed"] for t in trials if t.group == "filtered"} == {0}


def test_arm_seeds_add_an_arms_trials_after_the_whole_seeds(tmp_path, synth_matcher_weights):
    """More seeds for one arm whose claim needs them: planned after every arm's `seeds`, releases untouched."""
    spec = load_spec(arms_spec(tmp_path, synth_matcher_weights,
                               extra=releases(tmp_path / "public.pt") + "arm_seeds: {r2: [5, 3]}\n"))
    trials = expand(spec)
    assert [t.name for t in trials][-2:] == ["r2_s5", "r2_s3"] and len(trials) == 10
    extra = trials[-2]
    assert extra.group == "r2" and extra.seed == 5 and extra.config.train.seed == 5
    assert trials[5].name == "r2_s1" and extra.config.loss.r1_gamma == 2.0
    assert extra.dotlist == [o.replace("train.seed=1", "train.seed=5") for o in trials[5].dotlist]


@pytest.mark.parametrize("arms, extra, message", [
    ("arms:\n  plain: []\naxes:\n  loss.r1_gamma: [1.0]\n", "", "arms: give either named arms or axes"),
    ("arms:\n  'bad name': []\n", "", "arms.bad name"),
    ("arms:\n  plain: [loss.r1_gamma]\n", "", "arms.plain: 'loss.r1_gamma': give KEY=VALUE"),
    ("arms:\n  plain: [train.seed=3]\n", "", "train.seed: set by the sweep"),
    ("arms:\n  plain: [loss.colour=2]\n", "", "arm plain (trial plain_s0)"),
    ("axes:\n  loss.r1_gamma: [1.0]\n", "releases:\n  public: {generator: public.pt}\n", "releases: release arms need"),
    ("arms:\n  plain: []\n", "releases:\n  plain: {from: plain}\n", "releases.plain: a release arm's name"),
    ("arms:\n  plain: []\n", "releases:\n  f: {from: plain, colour: 1}\n", "releases.f.colour: unknown key"),
    ("arms:\n  plain: []\n", "releases:\n  f: {fmr: 0.1}\n", "releases.f: give exactly one of generator"),
    ("arms:\n  plain: []\n", "releases:\n  f: {from: other}\n", "releases.f.from: 'other' is not one of"),
    ("arms:\n  plain: []\n", "releases:\n  f: {from: plain, filter: [synth_b]}\n",
     "releases.f.filter: 'synth_b' is not among eval.matchers"),
    ("arms:\n  plain: []\n", "releases:\n  f: {generator: missing.pt}\n", "releases.f.generator: 'missing.pt': not"),
    ("arms:\n  plain: []\n", "releases:\n  f: {from: plain, fmr: 1.5}\n", "releases.f.fmr: 1.5"),
    ("arms:\n  plain: []\n", "releases:\n  f: {from: plain, max_candidates: 3}\n", "releases.f.max_candidates: 3"),
    ("arms:\n  plain: []\n", "arm_seeds: {other: [4]}\n", "arm_seeds.other: not a training arm of `arms` (plain)"),
    ("arms:\n  plain: []\n", "arm_seeds: {plain: [1, 4]}\n", "arm_seeds.plain: [1] already in `seeds`"),
    ("arms:\n  plain: []\n", "arm_seeds: {plain: [4, 4]}\n", "arm_seeds.plain: [4, 4]: one or more distinct"),
    ("arms:\n  plain: []\n", "arm_seeds: {plain: [-1]}\n", "arm_seeds.plain: [-1]: one or more distinct"),
])
def test_a_bad_arm_is_refused_before_anything_runs(tmp_path, synth_matcher_weights, capsys, arms, extra, message):
    spec = arms_spec(tmp_path, synth_matcher_weights, arms=arms, extra=extra)
    assert main(["sweep", "run", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def swept(tmp_path_factory, synth_matcher_weights):
    root = tmp_path_factory.mktemp("arms_sweep")
    spec = arms_spec(root, synth_matcher_weights, extra=releases(root / "public.pt"), seeds="[0]")
    assert main(["sweep", "run", str(spec), "--out", str(root / "out")]) == 0
    return root, spec


def test_each_row_is_its_own_evaluation(swept):
    root, _ = swept
    rows = {r["trial"]: r for r in read_rows(root / "out")}
    assert set(rows) == {"plain_s0", "r2_s0", "public_s0", "filtered_s0"}
    assert all(r["status"] == "done" for r in rows.values())
    for name, row in rows.items():
        final = json.loads((root / "out" / "trials" / name / "eval.jsonl").read_text().splitlines()[-1])
        assert row["metrics"][f"leak@synth@{FILTER_FMR:g}"] == final["audit"]["synth"]["leakage"][0]["leak_rate"]
        assert row["metrics"]["fd@fd_synth"] == final["fidelity"]["fd_synth"]["fd_synth"]
        assert not row["private"]
    assert set(rows["public_s0"]["metrics"]) == set(rows["plain_s0"]["metrics"])
    assert rows["public_s0"]["kimg"] == 0 and rows["filtered_s0"]["kimg"] == rows["plain_s0"]["kimg"] == 0.016
    shown = {line.split()[0]: line for line in format_status(root / "out").splitlines()[2:]}
    assert "done" in shown["filtered_s0"] and "release" in shown["filtered_s0"] and "0.016/0.016" in shown["plain_s0"]


def test_the_filtered_release_is_the_arms_generator_through_the_filter(swept):
    root, _ = swept
    folder = root / "out" / "trials" / "filtered_s0"
    final = json.loads((folder / "eval.jsonl").read_text())
    release = final["release"]
    assert release["from_trial"] == "plain_s0" and release["generator"].endswith("snapshot-0000000016.pt")
    kept = ImageFiles(folder / "filter" / "kept")
    assert final["num_fakes"] == len(kept) == release["kept"] <= 12 and release["drawn"] >= release["kept"]
    # the filter and the evaluation both take synth's threshold from the training set's pairs at the same FMR:
    # nothing the filter kept reaches it
    threshold = final["audit"]["synth"]["leakage"][0]["threshold"]
    assert release["filter"]["thresholds"]["synth"] == pytest.approx(threshold)
    assert final["audit"]["synth"]["leakage"][0]["leak_rate"] == 0.0
    candidates = [json.loads(x) for x in (folder / "filter" / "candidates.jsonl").read_text().splitlines()]
    assert sum(c.get("kept", False) for c in candidates) == release["kept"]
    # the unfiltered arm's own evaluation drew the first 12 of the same candidates
    plain = json.loads((root / "out" / "trials" / "plain_s0" / "eval.jsonl").read_text().splitlines()[-1])
    assert plain["seeds"] == "0-11" and release["seeds"] == "0-"


def test_a_rerun_redoes_nothing_and_a_changed_release_is_refused(swept, synth_matcher_weights, capsys):
    root, spec = swept
    trials = root / "out" / "trials"
    before = {name: files_of(trials / name) for name in ("plain_s0", "public_s0", "filtered_s0")}
    assert main(["sweep", "run", str(spec), "--out", str(root / "out")]) == 0
    assert {name: files_of(trials / name) for name in before} == before
    changed = arms_spec(root, synth_matcher_weights, seeds="[0]", name="changed.yaml",
                        extra=releases(root / "public.pt", fmr=0.2))
    assert main(["sweep", "run", str(changed), "--out", str(root / "out")]) == 2
    assert "fmr 0.1 -> 0.2" in capsys.readouterr().err


def test_a_release_of_an_arm_not_yet_trained_fails_naming_it(tmp_path, synth_matcher_weights):
    from training.sweep.release import source_networks
    (tmp_path / "trials" / "plain_s0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="plain_s0: no final snapshot"):
        source_networks({"generator": None, "from": "plain"}, tmp_path, 0, 0.016)


def test_spec_errors_name_the_arm(tmp_path, synth_matcher_weights):
    with pytest.raises(ConfigError, match="releases.f.filter"):
        expand(load_spec(arms_spec(tmp_path, synth_matcher_weights, extra="releases:\n  f: {generator: public.pt, "
                                                                            "filter: [synth]}\n")))
