"""The sweep spec: axes expanded as a grid or zipped and crossed with seeds, trial names derived from the
axis values (stable, folder-safe, unique), command-line overrides applied last, and bad specs refused
naming the key (also from the command line: one line, exit 2)."""
import itertools

import pytest
from omegaconf import OmegaConf

from tests.training.tiny import TINY
from training.cli import main
from training.config import ConfigError
from training.sweep.spec import MAX_NAME, expand, labels, load_spec


@pytest.fixture
def preset(tmp_path):
    path = tmp_path / "tiny.yaml"
    OmegaConf.save(OmegaConf.from_dotlist(TINY), path)
    return path


def write_spec(tmp_path, body: str, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text("name: t\nbase: tiny.yaml\nkimg: 0.016\neval: {matchers: [synth]}\n" + body)
    return path


def test_grid_crosses_every_axis_value_and_seed(tmp_path, preset):
    spec = load_spec(write_spec(tmp_path, "axes:\n  loss.r1_gamma: [1.0, 2.5]\n  privacy.unit: [none, image]\n"
                                          "  model.mbstd_channels: [0]\nseeds: [3, 4]\n"
                                          "overrides: [privacy.noise_multiplier=1.0]\n"))
    trials = expand(spec)
    assert len(trials) == 2 * 2 * 1 * 2
    want = [(g, u, s) for g, u in itertools.product([1.0, 2.5], ["none", "image"]) for s in (3, 4)]
    assert [(t.overrides["loss.r1_gamma"], t.overrides["privacy.unit"], t.seed) for t in trials] == want
    for t in trials:   # the values reach the typed config, with the seed and the budget
        assert t.config.loss.r1_gamma == t.overrides["loss.r1_gamma"]
        assert t.config.privacy.unit == t.overrides["privacy.unit"]
        assert (t.config.train.seed, t.config.train.kimg) == (t.seed, 0.016)
        assert t.config.eval.every_kimg == 0.016          # the evaluation defaults to the end of the budget
    assert trials[0].name == "r1_gamma-1_unit-none_mbstd_channels-0_s3"
    assert trials[0].group == "r1_gamma-1_unit-none_mbstd_channels-0"
    assert len({t.name for t in trials}) == len(trials)


def test_zip_pairs_the_values_in_order(tmp_path, preset):
    spec = load_spec(write_spec(tmp_path, "combine: zip\naxes:\n  privacy.unit: [none, identity, identity]\n"
                                          "  privacy.noise_multiplier: [null, 0.7, 2.0]\n"))
    trials = expand(spec)
    assert [(t.config.privacy.unit, t.config.privacy.noise_multiplier) for t in trials] == \
        [("none", None), ("identity", 0.7), ("identity", 2.0)]
    assert [t.name for t in trials] == ["unit-none_noise_multiplier-none_s0", "unit-identity_noise_multiplier-0.7_s0",
                                        "unit-identity_noise_multiplier-2_s0"]


def test_names_are_stable_short_and_safe(tmp_path, preset):
    body = "axes:\n  eval.batch: [8]\n  leakage_reg.batch: [2]\n  eval.fidelity: [['synth=/a b/c.pt']]\n"
    first = [t.name for t in expand(load_spec(write_spec(tmp_path, body)))]
    again = [t.name for t in expand(load_spec(write_spec(tmp_path, body, "again.yaml")))]
    assert first == again == ["eval.batch-8_leakage_reg.batch-2_fidelity-synth-a-b-c.pt_s0"]
    assert labels(["a.x.y", "b.y", "c.z"]) == {"a.x.y": "x.y", "b.y": "b.y", "c.z": "z"}
    long = "axes:\n  eval.fidelity: [['synth=/" + "x" * 200 + ".pt'], ['synth=/" + "x" * 199 + "y.pt']]\n"
    names = [t.name for t in expand(load_spec(write_spec(tmp_path, long, "long.yaml")))]
    assert all(len(n) <= MAX_NAME + 3 for n in names) and len(set(names)) == 2     # a hash keeps them apart
    assert names == [t.name for t in expand(load_spec(write_spec(tmp_path, long, "long2.yaml")))]


def test_command_line_overrides_come_last(tmp_path, preset):
    path = tmp_path / "spec.yaml"
    path.write_text("name: t\nbase: tiny.yaml\nkimg: 0.016\noverrides: [eval.num_fakes=30]\n"
                    "eval: {matchers: [synth], num_fakes: 40}\n")
    assert expand(load_spec(path))[0].config.eval.num_fakes == 40
    assert expand(load_spec(path, ["eval.num_fakes=50"]))[0].config.eval.num_fakes == 50


@pytest.mark.parametrize("body, named", [
    ("axis:\n  loss.r1_gamma: [1]\n", "'axis'"),                                   # a typo of axes
    ("slurm: {gpu: 2}\n", "slurm.gpu"),
    ("axes:\n  privacy.noise: [1.0]\n", "privacy.noise"),                         # not a config key
    ("axes:\n  loss.r1_gamma: []\n", "axes.loss.r1_gamma"),                       # empty
    ("axes:\n  loss.r1_gamma: [fast]\n", "loss.r1_gamma"),                        # not a number
    ("axes:\n  train.seed: [1, 2]\n", "train.seed"),                              # the sweep's own
    ("overrides: [train.kimg=5]\n", "train.kimg"),
    ("combine: zip\naxes:\n  loss.r1_gamma: [1, 2]\n  loss.pl_weight: [0]\n", "combine=zip"),
    ("combine: cross\n", "combine"),
    ("executor: cluster\n", "executor"),
    ("seeds: []\n", "seeds"),
    ("axes:\n  loss.r1_gamma: [1.0, 1.0]\n", "axes.loss.r1_gamma"),             # a repeated value
    ("axes:\n  loss.r1_gamma: [1, 1.0]\n", "loss.r1_gamma"),                    # two spellings, one name
    ("eval: {matchers: [synth], fmr: [0.1]}\n", "eval.fmr"),                     # eval keys are checked too
])
def test_bad_specs_are_refused_naming_the_key(tmp_path, preset, body, named):
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\nbase: tiny.yaml\nkimg: 0.016\n" + ("eval: {matchers: [synth]}\n" if "eval:" not in body
                                                                 else "") + body)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.").replace("'", "'")):
        expand(load_spec(path))


def test_missing_base_and_budget_are_refused(tmp_path, preset):
    (tmp_path / "a.yaml").write_text("name: t\nbase: nowhere.yaml\nkimg: 1\n")
    with pytest.raises(ConfigError, match="base.*nowhere.yaml"):
        load_spec(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("name: t\nbase: tiny.yaml\n")
    with pytest.raises(ConfigError, match="kimg"):
        expand(load_spec(tmp_path / "b.yaml"))


def test_the_command_line_refuses_a_bad_spec_in_one_line(tmp_path, preset, capsys):
    path = write_spec(tmp_path, "axes:\n  privacy.noise: [1.0]\n")
    assert main(["sweep", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "privacy.noise" in err and "unknown config key" in err
    assert not (tmp_path / "out").exists()                            # nothing planned, nothing written
    assert main(["sweep", "run", str(tmp_path / "missing.yaml")]) == 2
    assert main(["sweep", "status", str(tmp_path)]) == 2               # not a sweep folder
    assert "not a sweep folder" in capsys.readouterr().err


def test_dry_run_lists_the_trials(tmp_path, preset, capsys):
    path = write_spec(tmp_path, "axes:\n  loss.r1_gamma: [1, 2]\n")
    assert main(["sweep", "run", str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.splitlines() == ["r1_gamma-1_s0: loss.r1_gamma=1 train.seed=0",
                                                    "r1_gamma-2_s0: loss.r1_gamma=2 train.seed=0"]
    assert not (tmp_path / "out").exists()


SHIPPED = {"synthfaces32-privacy": ["eval.matchers=[synth=/m.pt]", "leakage_reg.matchers=[synth=/m.pt]"],
           "ffhq256-privacy": ["data.path=/d.zip", "eval.matchers=[arcface_torch=/a.pth]",
                               "leakage_reg.matchers=[arcface_torch=/a.pth]"],
           "synthfaces32-leak-setting": ["eval.matchers=[synth_b=/b.pt]"],
           "synthfaces32-leak-setting-60kimg": ["eval.matchers=[synth_b=/b.pt]"]}


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_specs_expand(name):
    trials = expand(load_spec(f"configs/sweeps/{name}.yaml", SHIPPED[name]))
    privacy = [(t.config.privacy.unit, t.config.leakage_reg.weight) for t in trials]
    if name == "synthfaces32-privacy":   # the README's five trials, sigma for the two DP ones
        assert privacy == [("none", 0), ("identity", 0), ("identity", 0), ("none", 5), ("none", 20)]
        assert [t.config.privacy.noise_multiplier for t in trials[1:3]] == [0.7, 2.0]
        assert all(t.config.train.kimg == 20 and t.config.data.synthfaces.overrep_images == 500 for t in trials)
    elif name.startswith("synthfaces32-leak-setting"):   # no defence, three seeds, person 0 with 500 of 990 images
        assert privacy == [("none", 0)] * 3 and [t.seed for t in trials] == [0, 1, 2]
        kimg = 60 if name.endswith("60kimg") else 30
        assert all(t.config.train.kimg == kimg and t.config.data.synthfaces.num_identities == 50 for t in trials)
    else:
        assert len(trials) == 15 and [t.config.privacy.target_epsilon for t in trials[3:9:3]] == [10.0, 3.0]


def test_slurm_jobs_ask_for_what_the_spec_says(tmp_path, monkeypatch):
    """The sbatch file submitit would submit (a stand-in `srun` on PATH: no cluster here)."""
    pytest.importorskip("submitit")
    from training.sweep.runner import make_executor
    spec = load_spec("configs/sweeps/ffhq256-privacy.yaml", SHIPPED["ffhq256-privacy"])
    spec.slurm.partition, spec.slurm.account, spec.slurm.constraint = "gpu", "lab", "a100"
    with pytest.raises(FileNotFoundError, match="srun"):
        monkeypatch.setenv("PATH", str(tmp_path))
        make_executor(spec, tmp_path)
    (tmp_path / "srun").write_text("#!/bin/sh\n")
    (tmp_path / "srun").chmod(0o755)
    text = make_executor(spec, tmp_path)._executor._make_submission_file_text("python -m job", "uid")
    for line in ("--partition=gpu", "--account=lab", "--constraint=a100", "--gpus-per-node=8",
                 "--ntasks-per-node=8", "--cpus-per-task=8", "--nodes=1", "--time=2880", "--mem=480GB",
                 "--job-name=sweep-ffhq256-privacy"):
        assert f"#SBATCH {line}\n" in text, line


def test_slurm_off_a_cluster_is_refused_before_anything_is_written(tmp_path, preset, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))          # no srun here
    out = tmp_path / "out"
    assert main(["sweep", "run", str(write_spec(tmp_path, "")), "--executor", "slurm", "--out", str(out)]) == 2
    assert "no `srun` on PATH" in capsys.readouterr().err and not out.exists()
