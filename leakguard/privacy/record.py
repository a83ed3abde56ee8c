"""Reading the privacy record a LeakGuard checkpoint carries: release.pt's (extra.privacy) or a training
snapshot's (privacy.record). The record itself is written by training (training.dp); this reader is
what `leakguard privacy show`, `leakguard report` and a sweep's results use, without importing training.
A record is checked as it is read: a field of the wrong type (a file edited or damaged) is one error
naming the file and the key, never a crash in the page or the table that shows it."""
import json
import math
import os
from numbers import Integral, Real
from pathlib import Path

from leakguard.identity_data import listing
from leakguard.torch_files import FORMATS, CheckpointError, read_checkpoint


def _number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _whole(v) -> bool:
    return isinstance(v, Integral) and not isinstance(v, bool)


def _texts(v) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


# key: (test, what it must be); the first three are required, the rest checked when present
FIELDS = {
    "unit": (lambda v: isinstance(v, str), "a text (identity or image)"),
    "epsilon": (lambda v: _number(v) and not math.isnan(v) and v >= 0, "a number >= 0"),
    "delta": (lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)"),
    "sigma": (lambda v: _number(v) and v > 0, "a number > 0"),
    "q": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "steps": (lambda v: _whole(v) and v >= 0, "a whole number >= 0"),
    "max_grad_norm": (lambda v: _number(v) and v > 0, "a number > 0"),
    "expected_batch": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "max_images_per_identity": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "units": (lambda v: _whole(v) and v >= 1, "a whole number >= 1"),
    "accountant": (lambda v: isinstance(v, str), "a text"),
    "opacus_version": (lambda v: isinstance(v, str), "a text"),
    "secret_seed": (lambda v: isinstance(v, str), "a text"),
    "covers": (_texts, "a list of texts"),
    "not_covered": (_texts, "a list of texts"),
    "covered_files": (_texts, "a list of texts"),
    "not_covered_files": (_texts, "a list of texts"),
}
REQUIRED = ("unit", "epsilon", "delta")
MECHANISM = {"name": (lambda v: isinstance(v, str), "a text"), "sigma": FIELDS["sigma"], "q": FIELDS["q"],
             "steps": FIELDS["steps"]}


def _bad(path, key: str, value, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: privacy record: {key} is {value!r:.80} ({type(value).__name__}), expected "
                           f"{what}; the file was changed or damaged: use the release.pt training wrote")


def check_record(record, path) -> dict:
    """`record` if it is a privacy record with fields of the right types, else CheckpointError naming the key."""
    if not isinstance(record, dict):
        raise _bad(path, "the record", record, "a dict of its fields")
    for key in REQUIRED:
        if key not in record:
            raise CheckpointError(f"{path}: privacy record: {key} is missing; the file was changed or damaged: use "
                                  f"the release.pt training wrote")
    for key, (ok, what) in FIELDS.items():
        if key in record and not ok(record[key]):
            raise _bad(path, key, record[key], what)
    mechanisms = record.get("mechanisms", [])
    if not isinstance(mechanisms, list):
        raise _bad(path, "mechanisms", mechanisms, "a list of {name, sigma, q, steps}")
    for i, m in enumerate(mechanisms):
        if not isinstance(m, dict):
            raise _bad(path, f"mechanisms[{i}]", m, "a dict {name, sigma, q, steps}")
        for key, (ok, what) in MECHANISM.items():
            if not ok(m.get(key)):
                raise _bad(path, f"mechanisms[{i}].{key}", m.get(key), what)
    return record


def read_dataset_record(path: str | os.PathLike) -> dict | None:
    """The privacy record a dataset zip or folder carries in its dataset.json (a DP image set, such as Private
    Evolution's images.zip), checked; None when it carries none."""
    path = Path(path)
    with listing(path) as (_, meta, _read):
        if meta is None:
            return None
        try:
            record = json.loads(meta).get("privacy")
        except (ValueError, AttributeError) as e:
            raise CheckpointError(f"{path}: dataset.json is not a JSON object ({e})") from None
    return None if record is None else check_record(record, f"{path} (dataset.json)")


def read_privacy_record(path: str | os.PathLike) -> dict | None:
    """The privacy record of a LeakGuard checkpoint (release.pt) or training snapshot; None if it has none."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a checkpoint; give a file, e.g. {path / 'release.pt'} or "
                                f"a snapshot in {path / 'checkpoints'}")
    data = read_checkpoint(path, FORMATS, "a LeakGuard checkpoint")
    if "privacy" in data:  # a training snapshot: its privacy state holds the record
        state = data["privacy"]
        if state is None:
            return None
        if not isinstance(state, dict) or "record" not in state:
            raise _bad(path, "privacy", state, "a dict with the record")
        return check_record(state["record"], path)
    extra = data.get("extra")
    if extra is None:
        return None
    if not isinstance(extra, dict):
        raise _bad(path, "extra", extra, "a dict")
    record = extra.get("privacy")
    return None if record is None else check_record(record, path)
