"""Every subcommand against a table of bad inputs (missing file, folder for a file, file for a folder,
bad numbers, NaN and infinity, huge ranges, bad devices): exit code 2, one message, no traceback."""
import pytest

from tests.training.tiny import TINY
from training.cli import main


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    root = tmp_path_factory.mktemp("table")
    (root / "a_file").write_text("not what you think")
    (root / "a_folder").mkdir()
    return root


CASES = {
    # generate
    "generate: missing network": ["generate", "--network", "{root}/missing.pt", "--outdir", "{root}/o"],
    "generate: folder for network": ["generate", "--network", "{root}/a_folder", "--outdir", "{root}/o"],
    "generate: junk network": ["generate", "--network", "{root}/a_file", "--outdir", "{root}/o"],
    "generate: file for outdir": ["generate", "--random-init", "--outdir", "{root}/a_file"],
    "generate: bad batch": ["generate", "--random-init", "--batch", "0", "--outdir", "{root}/o"],
    "generate: nan trunc": ["generate", "--random-init", "--trunc", "nan", "--outdir", "{root}/o"],
    "generate: inf trunc": ["generate", "--random-init", "--trunc=inf", "--outdir", "{root}/o"],
    "generate: huge seeds": ["generate", "--random-init", "--seeds", "0-99999999999", "--outdir", "{root}/o"],
    "generate: bad device": ["generate", "--random-init", "--device", "banana", "--outdir", "{root}/o"],
    "generate: bad cuda index": ["generate", "--random-init", "--device", "cuda:abc", "--outdir", "{root}/o"],
    # convert
    "convert: missing source": ["convert", "{root}/missing.pkl", "{root}/out.pt"],
    "convert: folder for source": ["convert", "{root}/a_folder", "{root}/out.pt"],
    "convert: junk source": ["convert", "{root}/a_file", "{root}/out.pt"],
    # train
    "train: missing config": ["train", "--config", "{root}/missing.yaml"],
    "train: folder for config": ["train", "--config", "{root}/a_folder"],
    "train: unknown key": ["train", *TINY, "train.kimmg=3"],
    "train: bad number": ["train", *TINY, "train.kimg=lots"],
    "train: missing data": ["train", *TINY, "run_dir={root}/runs", "data.path={root}/missing.zip"],
    "train: junk data": ["train", *TINY, "run_dir={root}/runs", "data.path={root}/a_file"],
    "train: missing resume": ["train", *TINY, "run_dir={root}/runs", "--resume", "{root}/missing.pt"],
    "train: junk resume": ["train", *TINY, "run_dir={root}/runs", "--resume", "{root}/a_file"],
    "train: bad device": ["train", *TINY, "run_dir={root}/runs", "train.device=banana"],
    # dataset and synthfaces
    "dataset: missing source": ["dataset", "--source", "{root}/missing", "--dest", "{root}/d.zip"],
    "dataset: file for source": ["dataset", "--source", "{root}/a_file", "--dest", "{root}/d.zip"],
    "dataset: dest not a zip": ["dataset", "--source", "{root}/a_folder", "--dest", "{root}/d.tar"],
    "dataset: bad resolution": ["dataset", "--source", "{root}/a_folder", "--dest", "{root}/d.zip", "--resolution", "100"],
    "synthfaces: bad resolution": ["synthfaces", "--out", "{root}/s.zip", "--resolution", "7"],
    "synthfaces: huge identities": ["synthfaces", "--out", "{root}/s.zip", "--identities", "99999999999"],
    "synthfaces: folder for out": ["synthfaces", "--out", "{root}/a_folder"],
    # matcher
    "matcher train: missing data": ["matcher", "train", "--data", "{root}/missing.zip", "--arch", "synth",
                                    "--out", "{root}/m.pt"],
    "matcher train: bad epochs": ["matcher", "train", "--data", "{root}/a_folder", "--arch", "synth",
                                  "--out", "{root}/m.pt", "--epochs", "-1"],
    "matcher calibrate: missing weights": ["matcher", "calibrate", "--matcher", "synth", "--weights",
                                           "{root}/missing.pt", "--data", "{root}/a_folder"],
    "matcher calibrate: junk weights": ["matcher", "calibrate", "--matcher", "synth", "--weights", "{root}/a_file",
                                        "--data", "{root}/a_folder"],
    # audit
    "audit: missing training": ["audit", "--generated", "{root}/a_folder", "--training", "{root}/missing.zip",
                                "--matcher", "synth", "--out", "{root}/r"],
    "audit: missing generator": ["audit", "--generator", "{root}/missing.pt", "--training", "{root}/a_folder",
                                 "--matcher", "synth", "--out", "{root}/r"],
    "audit: file for out": ["audit", "--generated", "{root}/a_folder", "--training", "{root}/a_folder",
                            "--matcher", "synth", "--out", "{root}/a_file"],
    "audit: file for cache": ["audit", "--generated", "{root}/a_folder", "--training", "{root}/a_folder",
                              "--matcher", "synth", "--out", "{root}/r", "--cache", "{root}/a_file"],
    "audit: bad device": ["audit", "--generated", "{root}/a_folder", "--training", "{root}/a_folder",
                          "--matcher", "synth", "--out", "{root}/r", "--device", "banana"],
    "audit: nan trunc": ["audit", "--generator", "{root}/a_file", "--trunc", "nan", "--training", "{root}/a_folder",
                         "--matcher", "synth", "--out", "{root}/r"],
    "audit: unknown matcher": ["audit", "--generated", "{root}/a_folder", "--training", "{root}/a_folder",
                               "--matcher", "vggface", "--out", "{root}/r"],
    # filter
    "filter: missing training": ["filter", "--generated", "{root}/a_folder", "--training", "{root}/missing.zip",
                                 "--matcher", "synth", "--out", "{root}/f"],
    "filter: missing generator": ["filter", "--generator", "{root}/missing.pt", "--count", "5", "--training",
                                  "{root}/a_folder", "--matcher", "synth", "--out", "{root}/f"],
    "filter: generator without count": ["filter", "--generator", "{root}/a_file", "--training", "{root}/a_folder",
                                        "--matcher", "synth", "--out", "{root}/f"],
    "filter: file for out": ["filter", "--generated", "{root}/a_folder", "--training", "{root}/a_folder",
                             "--matcher", "synth", "--out", "{root}/a_file"],
    "filter: nan fmr": ["filter", "--generated", "{root}/a_folder", "--training", "{root}/a_folder",
                        "--matcher", "synth", "--fmr", "nan", "--out", "{root}/f"],
    "filter: fmr above 1": ["filter", "--generator", "{root}/a_file", "--count", "5", "--training", "{root}/a_folder",
                            "--matcher", "synth", "--fmr", "2", "--out", "{root}/f"],
    "filter: negative count": ["filter", "--generator", "{root}/a_file", "--count", "-1", "--training",
                               "{root}/a_folder", "--matcher", "synth", "--out", "{root}/f"],
    "filter: bad seeds": ["filter", "--generator", "{root}/a_file", "--seeds", "x-", "--count", "5", "--training",
                          "{root}/a_folder", "--matcher", "synth", "--out", "{root}/f"],
    "filter: unknown check matcher": ["filter", "--generated", "{root}/a_folder", "--training", "{root}/a_folder",
                                      "--matcher", "synth", "--check-matcher", "vggface", "--out", "{root}/f"],
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_message_exit_2(places, capsys, name):
    argv = [a.replace("{root}", str(places)) for a in CASES[name]]
    try:
        code = main(argv)
    except SystemExit as e:          # argparse's own refusals: usage and one error line
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (name, code, err[-2000:])
    assert "Traceback" not in err and "internal error" not in err, err[-2000:]
    assert "error:" in err
