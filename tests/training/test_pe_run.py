"""`leakguard pe` end to end on a tiny public generator and SynthFaces people: the release and its privacy
record agree with the ledger and dp-accounting, an interrupted run continues without redoing finished
iterations and ends where an uninterrupted one does, a generator trained on the private people is refused,
and every bad input is one line, exit 2, with nothing written."""
import json
import zipfile
from fnmatch import fnmatch

import pytest
import torch

from leakguard.pe import MECHANISM
from leakguard.privacy.record import read_privacy_record
from tests.leakguard.test_pe_mechanism import oracle
from training.checkpoint import save_networks
from training.cli import main
from training.cli.generate import random_generator
from training.data.build import export_zip
from training.pe import run as pe_run
from training.synthfaces import SynthFaces

PEOPLE = 8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pe")
    G = random_generator(32, 0)
    save_networks(root / "public.pt", {"G_ema": G}, {"dataset": {"name": "public"}})
    private = export_zip(root / "private.zip", SynthFaces(32, num_identities=PEOPLE, images_per_identity=3, seed=4))
    plain = root / "noids.zip"
    with zipfile.ZipFile(private) as src, zipfile.ZipFile(plain, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, json.dumps({"labels": None, "identities": None}) if name == "dataset.json"
                         else src.read(name))
    return {"root": root, "public": root / "public.pt", "private": private, "noids": plain}


def argv(files, matcher, out, *extra):
    return ["pe", "--generator", str(files["public"]), "--data", str(files["private"]), "--embedding",
            f"synth={matcher}", "--population", "12", "--iterations", "3", "--count", "16", "--device", "cpu",
            "--secret-seed", "7", "--cache", str(files["root"] / "cache"), "--out", str(out), *extra]


def test_release_record_and_images_agree_with_the_ledger_and_dp_accounting(files, synth_matcher_weights, tmp_path):
    out = tmp_path / "pe"
    assert main(argv(files, synth_matcher_weights, out, "--epsilon", "4",
                     "--eval-matcher", f"synth={synth_matcher_weights}")) == 0
    record = read_privacy_record(out / "release.pt")
    assert record["unit"] == "identity" and record["units"] == PEOPLE and record["q"] == 1.0
    assert record["mechanisms"] == [{"name": MECHANISM, "sigma": record["sigma"], "q": 1.0, "steps": 3}]
    assert record["epsilon"] <= 4 and record["epsilon"] == pytest.approx(oracle(record["sigma"], 3, record["delta"],
                                                                                 "rdp"), rel=0.01)
    assert record["delta"] == pytest.approx(min(1e-5, 0.1 / PEOPLE))
    assert record["init"]["path"].endswith("public.pt") and "never saw" in record["init"]["assumption"]
    assert "checkpoints/iter-*.pt" in record["not_covered_files"] and "eval.jsonl" in record["not_covered_files"]
    with zipfile.ZipFile(out / "images.zip") as z:
        assert sum(n.endswith(".png") for n in z.namelist()) == 16
    latents = torch.load(out / "latents.pt", weights_only=True)
    assert latents.shape == (16, 64)                                        # count x w_dim of the generator
    lines = pe_run.read_log(out)
    assert [line["iteration"] for line in lines] == [1, 2, 3]
    assert lines[-1]["epsilon"] == pytest.approx(record["epsilon"])
    assert all(line["survivors"] <= 12 for line in lines) and lines[-1]["population"] == 16
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in evals] == [0, 1, 2, 3]                   # the public start, then each iteration
    assert "outside" in evals[-1]["privacy"]["note"] and evals[0]["privacy"]["epsilon"] == 0
    assert evals[-1]["audit"]["synth"]["leakage"][0]["fmr"] == 1e-3
    written = [p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()]
    assert [w for w in written if not any(fnmatch(w, g) for g in record["covered_files"]
                                          + record["not_covered_files"])] == []   # every file is accounted for


def test_an_interrupted_run_continues_without_redoing_iterations_and_ends_as_an_uninterrupted_one(
        files, synth_matcher_weights, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    assert main(argv(files, synth_matcher_weights, whole, "--sigma", "2")) == 0
    cut = tmp_path / "cut"
    real = pe_run.iterate
    calls = []

    def stop_after_two(state, *args):
        if state["iteration"] == 2:
            raise KeyboardInterrupt
        calls.append(state["iteration"])
        return real(state, *args)
    monkeypatch.setattr(pe_run, "iterate", stop_after_two)
    assert main(argv(files, synth_matcher_weights, cut, "--sigma", "2")) == 130
    assert calls == [0, 1] and not (cut / "release.pt").exists()
    calls.clear()
    monkeypatch.setattr(pe_run, "iterate", lambda state, *args: calls.append(state["iteration"]) or real(state, *args))
    assert main(argv(files, synth_matcher_weights, cut, "--sigma", "2")) == 0
    assert calls == [2]                                                     # only the missing iteration ran
    assert torch.equal(torch.load(cut / "latents.pt", weights_only=True),
                       torch.load(whole / "latents.pt", weights_only=True))
    assert read_privacy_record(cut / "release.pt")["epsilon"] == read_privacy_record(whole / "release.pt")["epsilon"]
    assert [line["iteration"] for line in pe_run.read_log(cut)] == [1, 2, 3]


def test_a_rerun_with_other_settings_is_refused_naming_them(files, synth_matcher_weights, tmp_path, capsys):
    out = tmp_path / "pe"
    assert main(argv(files, synth_matcher_weights, out, "--sigma", "2")) == 0
    capsys.readouterr()
    assert main(argv(files, synth_matcher_weights, out, "--sigma", "3")) == 2
    assert "sigma: 2.0 -> 3.0" in capsys.readouterr().err


def test_a_generator_trained_on_the_private_people_is_refused(files, synth_matcher_weights, tmp_path, capsys):
    from leakguard.audit.images import ImageFiles
    seen = tmp_path / "seen.pt"
    save_networks(seen, {"G_ema": random_generator(32, 1)},
                  {"dataset_fingerprint": ImageFiles(files["private"]).fingerprint})
    args = argv(files, synth_matcher_weights, tmp_path / "out", "--epsilon", "4")
    args[args.index("--generator") + 1] = str(seen)
    assert main(args) == 2
    assert "never saw the private people" in capsys.readouterr().err and not (tmp_path / "out").exists()


BAD = {
    "no identities": (["--epsilon", "4"], {"--data": "noids"}, "no \"identities\""),
    "epsilon 0": (["--epsilon", "0"], {}, "--epsilon 0"),
    "negative epsilon": (["--epsilon", "-1"], {}, "--epsilon -1"),
    "neither epsilon nor sigma": ([], {}, "--epsilon"),
    "embedding not installed": (["--epsilon", "4"], {"--embedding": "inception=missing.pt"}, "missing.pt"),
    "unknown embedding": (["--epsilon", "4"], {"--embedding": "nosuch"}, "nosuch"),
    "population of one": (["--epsilon", "4", "--population", "1"], {}, "--population 1"),
    "bad vote": (["--epsilon", "4", "--vote", "majority"], {}, "--vote 'majority'"),
    "vacuous delta": (["--epsilon", "4", "--delta", "0.5"], {}, "--delta 0.5"),
    "negative public seed": (["--epsilon", "4", "--seed", "-1"], {}, "--seed -1"),
    "negative secret seed": (["--epsilon", "4", "--secret-seed", "-1"], {}, "--secret-seed -1"),
    "false-match rate above 1": (["--epsilon", "4", "--fmr", "2"], {}, "--fmr 2.0"),
    "no iterations": (["--epsilon", "4", "--iterations", "0"], {}, "--iterations 0"),
    "variation out of range": (["--epsilon", "4", "--variation", "0", "2"], {}, "--variation (0.0, 2.0)"),
    "members without non-members": (["--epsilon", "4", "--eval-members", "X"], {}, "--eval-nonmembers: give both"),
    "unknown eval matcher": (["--epsilon", "4", "--eval-matcher", "nosuch"], {}, "unknown matcher 'nosuch'"),
}


ARGPARSE = ("neither epsilon nor sigma", "unknown embedding")


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2_and_nothing_written(files, synth_matcher_weights, tmp_path, capsys, case):
    extra, replace, message = BAD[case]
    out = tmp_path / "out"
    args = argv(files, synth_matcher_weights, out, *extra)
    for option, value in replace.items():
        args[args.index(option) + 1] = str(files[value]) if value in files else value
    if case in ARGPARSE:
        with pytest.raises(SystemExit) as stop:
            main(args)
        code = stop.value.code
    else:
        code = main(args)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in lines[-1] and not out.exists()
    assert len(lines) == 1 or case in ARGPARSE                               # argparse prints its usage first


def test_privacy_show_names_the_mechanism_and_leaves_out_dp_sgd_fields(files, synth_matcher_weights, tmp_path,
                                                                        capsys):
    out = tmp_path / "pe"
    assert main(argv(files, synth_matcher_weights, out, "--sigma", "2")) == 0
    capsys.readouterr()
    assert main(["privacy", "show", str(out / "release.pt")]) == 0
    text = capsys.readouterr().out
    assert "method: Private Evolution" in text and "steps: 3" in text and f"units: {PEOPLE}" in text
    assert "max_grad_norm" not in text and "expected_batch" not in text
