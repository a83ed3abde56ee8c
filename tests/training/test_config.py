"""Config: presets merge over the schema, overrides apply, bad keys and values name themselves."""
from pathlib import Path

import pytest

from training.cli import main
from training.config import ConfigError, from_dict, load_config, to_dict, to_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PRESETS = ["synthfaces32", "celeba64", "ffhq256", "ffhq1024"]


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_round_trip(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.name == name
    assert from_dict(to_dict(cfg), "round trip") == cfg


def test_preset_values_reach_the_typed_config():
    cfg = load_config(CONFIGS / "ffhq1024.yaml")
    assert (cfg.data.resolution, cfg.model.channel_base, cfg.loss.r1_gamma, cfg.train.batch) == (1024, 32768, 10.0, 32)
    cfg = load_config(CONFIGS / "ffhq256.yaml")
    assert (cfg.model.channel_base, cfg.loss.r1_gamma, cfg.train.batch, cfg.train.ema_kimg) == (16384, 1.0, 64, 20.0)


def test_overrides_win_over_the_preset_and_are_typed():
    cfg = load_config(CONFIGS / "synthfaces32.yaml", ["train.kimg=12.5", "data.path=/x/y.zip", "optim.betas=[0.1,0.9]",
                                                     "data.synthfaces.overrep_identity=3"])
    assert cfg.train.kimg == 12.5 and isinstance(cfg.train.kimg, float)
    assert cfg.data.path == "/x/y.zip"
    assert cfg.optim.betas == [0.1, 0.9]
    assert cfg.data.synthfaces.overrep_identity == 3


def test_unknown_key_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["train.kimgs=3"])
    msg = str(e.value)
    assert "'train.kimgs'" in msg and "train.kimg," in msg and "train.batch_gpu" in msg and "data.path" not in msg


def test_unknown_key_in_a_preset_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  channel_bse: 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown config key 'model\.channel_bse'.*model\.channel_base"):
        load_config(bad)


@pytest.mark.parametrize("override, needle", [
    ("train.batch=many", "train.batch"),
    ("data.resolution=48", "power of two"),
    ("augment.mode=sometimes", "ada | fixed | noaug"),
    ("loss.r1_interval=0", "loss.r1_interval"),
    ("train.kimg", "KEY=VALUE"),
])
def test_bad_values_are_named(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [override])


def test_missing_preset_file():
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config("nope.yaml")


def test_dry_run_prints_the_resolved_config(capsys):
    assert main(["train", "--config", str(CONFIGS / "synthfaces32.yaml"), "--dry-run", "train.kimg=7"]) == 0
    out = capsys.readouterr().out
    assert "kimg: 7.0" in out and "name: synthfaces32" in out
    assert load_config(None, []).train.kimg != 7.0  # the schema default is untouched


def test_cli_rejects_unknown_key_with_exit_2(capsys):
    assert main(["train", "--dry-run", "nonsense.key=1"]) == 2
    assert "unknown config key 'nonsense'" in capsys.readouterr().err


def test_yaml_is_readable_back(tmp_path):
    cfg = load_config(CONFIGS / "celeba64.yaml", ["train.seed=5"])
    (tmp_path / "config.yaml").write_text(to_yaml(cfg))
    assert load_config(tmp_path / "config.yaml") == cfg
