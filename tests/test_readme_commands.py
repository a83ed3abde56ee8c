"""Every command README.md shows is accepted as written: `leakguard` (and `torchrun -m training.cli`) lines parse
with the real command-line parser, and a `train` line's preset and KEY=VALUE overrides build a checked config; a
`sweep run` line's spec loads; `make` targets exist in the Makefile; `python tools/..` and `python bench/..`
scripts exist and take the options shown (their --help lists them). Paths to data and weights are the user's
(faces.zip, synth.pt): the commands that need them are run at tiny sizes elsewhere in the suite."""
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import build_parser
from training.config import load_config
from training.sweep.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)


def commands() -> list[str]:
    """The README's shell commands: comments dropped, continuation lines joined, $(...) substitutions removed."""
    out = []
    for block in BLOCK.findall((REPO / "README.md").read_text()):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            line = re.sub(r"\$\([^)]*\)", "", line).strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))


def check_leakguard(argv: list[str]) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides += extra
        extra = []
    assert not extra, f"unrecognized arguments: {extra}"
    if args.command == "train":
        load_config(str(REPO / args.config) if args.config else None, list(args.overrides))
    if args.command == "sweep" and argv[1] == "run":
        load_spec(REPO / argv[2], [a for a in argv[3:] if "=" in a and not a.startswith("-")])


def stand_in_models(words: list[str], folder: Path) -> None:
    """An empty model file and spec for each NAME=MODEL.onnx|.tflite the line names (the parser checks both are
    there; what a real model holds is tested with real weights in tests/leakguard)."""
    for w in words:
        m = re.fullmatch(r"\w+=(.+)\.(onnx|tflite)", w)
        if m:
            (folder / f"{m.group(1)}.{m.group(2)}").write_bytes(b"")
            (folder / f"{m.group(1)}.{m.group(2)}.matcher.yaml").write_text("")


@pytest.mark.parametrize("line", commands())
def test_the_readme_command_is_accepted_as_written(line, tmp_path, monkeypatch):
    words = shlex.split(line)
    stand_in_models(words, tmp_path)
    monkeypatch.chdir(tmp_path)
    assert "..." not in words, f"{line!r}: a command with '...' does not run as written"
    if words[0] == "make":
        assert set(words[1:]) <= makefile_targets(), f"{line!r}: no such Makefile target"
    elif words[0] == "leakguard":
        check_leakguard(words[1:])
    elif words[0] == "torchrun":
        at = words.index("training.cli")
        check_leakguard(words[at + 1:])
    elif words[0] == "python":
        script = REPO / words[1]
        assert script.is_file(), f"{line!r}: {words[1]} does not exist"
        flags = [w.split("=")[0] for w in words[2:] if w.startswith("--")]
        if flags:
            shown = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                                   cwd=REPO, timeout=120).stdout
            assert all(f in shown for f in flags), f"{line!r}: {words[1]} --help lists none of {flags}"
    else:
        pytest.fail(f"{line!r}: a command this test does not know how to check")


def test_the_readme_shows_commands():
    assert len(commands()) >= 20
