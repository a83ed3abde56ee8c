"""Identity-labelled face images for matcher training and audits: a StyleGAN2-ADA dataset zip or a
folder of images, with the person in each image given by dataset.json:

    {"labels": ... (ignored), "identities": [[name, identity_id], ...]}

`name` is the image's '/'-separated path inside the zip or folder, `identity_id` an int. This is
leakguard's own small reader (the trainer's dataset code lives in training/, which leakguard does
not import); it loads everything into memory, which suits the few thousand images a matcher needs.
"""
import contextlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class IdentityDataError(ValueError):
    """A dataset that cannot be used for identities; the message names the file and the entry."""


def _is_image(name: str) -> bool:
    parts = name.split("/")
    # '.DS_Store', '._x.png' (macOS resource forks) and '__MACOSX/' are never images of people.
    return name.lower().endswith(IMAGE_EXTENSIONS) and not any(p.startswith(".") or p == "__MACOSX" for p in parts)


@contextlib.contextmanager
def listing(path: Path):
    """Yields (sorted image names, dataset.json bytes or None, name -> file bytes) of a zip or a folder."""
    if path.is_dir():
        names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        meta = path / "dataset.json"
        yield ([n for n in names if _is_image(n)], meta.read_bytes() if meta.is_file() else None,
               lambda n: (path / n).read_bytes())
        return
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise IdentityDataError(f"{path}: not a readable zip file ({e}); expected a dataset zip or an image folder") \
            from None
    with zf:
        names = zf.namelist()
        meta = zf.read("dataset.json") if "dataset.json" in names else None
        yield sorted(n for n in names if _is_image(n)), meta, zf.read


def identity_table(meta: bytes | None, where: str) -> dict[str, int]:
    if meta is None:
        raise IdentityDataError(f"{where}: no dataset.json, so the people in the images are unknown; it needs "
                                '{"identities": [[image name, identity id], ...]} (leakguard dataset writes it)')
    try:
        table = json.loads(meta).get("identities")
    except (ValueError, AttributeError) as e:
        raise IdentityDataError(f"{where}: dataset.json is not a JSON object ({e})") from None
    if table is None:
        raise IdentityDataError(f'{where}: dataset.json has no "identities" (null or missing); identity-labelled '
                                'data needs [[image name, identity id], ...] for every image')
    if not isinstance(table, list):
        raise IdentityDataError(f'{where}: dataset.json "identities" is a {type(table).__name__}; '
                                "expected a list of [image name, identity id] pairs")
    out = {}
    for k, entry in enumerate(table):
        ok = (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)
              and isinstance(entry[1], int) and not isinstance(entry[1], bool))
        if not ok:
            raise IdentityDataError(f'{where}: dataset.json "identities" entry {k} is {str(entry)[:80]}; '
                                    "expected [image name, int identity id]")
        out[entry[0]] = entry[1]
    return out


def read_identity_images(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset zip or image folder with identities -> (uint8 [N, 3, H, W] RGB, int64 [N] identity ids),
    in the sorted order of the image names. Grey and RGBA images become RGB; all must share one size."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"identity data not found: {path} (expected a dataset zip or an image folder)")
    with listing(path) as (names, meta, read):
        return _read(names, meta, read, str(path))


def _read(names: list[str], meta: bytes | None, read, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not names:
        raise IdentityDataError(f"{where}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    table = identity_table(meta, where)
    missing = [n for n in names if n not in table]
    if missing:
        raise IdentityDataError(f"{where}: {len(missing)} image(s) have no identity in dataset.json, "
                                f"first {missing[0]}; every image needs one")
    images = None
    for k, name in enumerate(names):
        try:
            with Image.open(io.BytesIO(read(name))) as img:
                pixels = np.asarray(img.convert("RGB"))  # [H, W, 3]
        except (OSError, ValueError) as e:
            raise IdentityDataError(f"{name} in {where}: cannot be read as an image ({e})") from None
        if images is None:
            images = np.empty((len(names), 3) + pixels.shape[:2], np.uint8)
        elif pixels.shape[:2] != images.shape[2:]:
            raise IdentityDataError(f"{name} in {where} is {pixels.shape[1]}x{pixels.shape[0]}, but {names[0]} is "
                                    f"{images.shape[3]}x{images.shape[2]}; all images must have one size")
        images[k] = pixels.transpose(2, 0, 1)
    identities = np.array([table[n] for n in names], np.int64)
    return torch.from_numpy(images), torch.from_numpy(identities)
