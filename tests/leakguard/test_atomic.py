"""The one atomic-write helper: the target holds the old file or the whole new one, never a part;
a failed write leaves no temporary file; files get the permissions open() would give; JSON is strict."""
import json
import os
import stat

import pytest

from leakguard.atomic import AtomicFile, atomic_open, strict_json, write_json, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_open(path) as f:
            f.write("half of the new")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_the_new_file_appears_whole_with_open_permissions(tmp_path):
    path = tmp_path / "sub" / "out.bin"
    with atomic_open(path, "wb") as f:
        f.write(b"x" * 1000)
        assert not path.exists()  # nothing at the target until the block succeeds
    assert path.read_bytes() == b"x" * 1000
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_atomic_file_hands_writers_a_path_and_discards_on_request(tmp_path):
    path = tmp_path / "data.zip"
    out = AtomicFile(path)
    out.tmp.write_bytes(b"partial")
    assert out.tmp.name.startswith(".data.zip.") and out.tmp.name.endswith(".tmp")
    out.discard()
    assert list(tmp_path.iterdir()) == []
    with AtomicFile(path) as out:
        out.tmp.write_bytes(b"whole")
    assert path.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [path]


def test_json_is_strict_and_names_the_bad_value(tmp_path):
    path = write_json(tmp_path / "r.json", {"a": [1, 2.5], "b": None})
    assert json.loads(path.read_text()) == {"a": [1, 2.5], "b": None}
    assert path.read_text().endswith("\n")
    with pytest.raises(ValueError, match=r"\.rows\[1\]\.ratio"):
        strict_json({"rows": [{"ratio": 1.0}, {"ratio": float("inf")}]})
    with pytest.raises(ValueError, match="bad.json: cannot write strict JSON.*NaN or infinite"):
        write_json(tmp_path / "bad.json", {"x": float("nan")})
    assert not (tmp_path / "bad.json").exists()


def test_write_text_and_modes(tmp_path):
    assert write_text(tmp_path / "t.txt", "é").read_text(encoding="utf-8") == "é"
    with pytest.raises(ValueError, match="mode 'a'"):
        with atomic_open(tmp_path / "t.txt", "a"):
            pass


def test_an_unwritable_place_is_named_by_the_target_not_a_temporary(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OSError) as e:
        write_text(blocker / "sub" / "out.json", "{}")          # a file where a folder should be
    assert str(blocker / "sub" / "out.json") in str(e.value) and ".tmp" not in str(e.value)
