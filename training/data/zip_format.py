"""Writes the StyleGAN2-ADA dataset zip, extended with per-image identities.

Layout (readable by the official training code, which ignores the extra key):
    00000/img00000000.png ...                 uint8 PNGs, all the same size and channel count
    dataset.json  {"labels": [[name, label], ...] or null,
                   "identities": [[name, identity_id], ...] or null,
                   "privacy": {...}}   (optional: the privacy record of a DP image set, as `leakguard pe` writes)
`label` is an int class index (as the official dataset tool writes); `identity_id` is the person
in the image, an int the privacy features group by.
"""
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from leakguard.atomic import AtomicFile


@dataclass
class Record:
    """One image for the zip: [H, W, C] uint8 pixels (C = 1 or 3) and what is known about it."""
    pixels: np.ndarray
    label: int | None = None
    identity: int | None = None


def archive_name(index: int) -> str:
    """The official dataset tool's naming: 1000 images per folder."""
    return f"{index // 1000:05d}/img{index:08d}.png"


class DatasetZipWriter:
    """Streams records into a zip; `close()` adds dataset.json and moves the file into place atomically.

    Use as a context manager. Every image must have the shape of the first one, and labels and
    identities must be given for all images or for none.
    """

    def __init__(self, path: str | os.PathLike, privacy: dict | None = None):
        """`privacy`: the privacy record of the images (a DP release), kept in dataset.json."""
        self.path = Path(path)
        self.privacy = privacy
        self._out = AtomicFile(self.path)
        self._zip = zipfile.ZipFile(self._out.tmp, "w", compression=zipfile.ZIP_STORED)
        self._shape = None
        self.labels: list = []
        self.identities: list = []
        self.count = 0

    def add(self, record: Record, source: str = "") -> str:
        pixels = np.asarray(record.pixels)
        where = f" ({source})" if source else ""
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 3):
            raise ValueError(f"image {self.count}{where}: expected [H, W, 1 or 3] uint8 pixels, "
                             f"got {pixels.dtype} {tuple(pixels.shape)}")
        if self._shape is None:
            self._shape = pixels.shape
        elif pixels.shape != self._shape:
            raise ValueError(f"image {self.count}{where} is {pixels.shape[1]}x{pixels.shape[0]}x{pixels.shape[2]}, "
                             f"but the dataset's first image is {self._shape[1]}x{self._shape[0]}x{self._shape[2]}; "
                             "resize all images to one size (leakguard dataset --resolution)")
        for value, table, what in ((record.label, self.labels, "label"), (record.identity, self.identities, "identity")):
            if self.count > 0 and (value is None) != (not table):
                raise ValueError(f"image {self.count}{where}: {what} values must be given for every image or for none")
        name = archive_name(self.count)
        buf = io.BytesIO()
        Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(buf, format="PNG", compress_level=0)
        self._zip.writestr(name, buf.getvalue())
        if record.label is not None:
            self.labels.append([name, int(record.label)])
        if record.identity is not None:
            self.identities.append([name, int(record.identity)])
        self.count += 1
        return name

    def close(self) -> Path:
        if self.count == 0:
            self.abort()
            raise ValueError(f"{self.path}: no images to write")
        meta = {"labels": self.labels or None, "identities": self.identities or None}
        if self.privacy is not None:
            meta["privacy"] = self.privacy
        with self._out:
            self._zip.writestr("dataset.json", json.dumps(meta))
            self._zip.close()
        return self.path

    def abort(self) -> None:
        self._zip.close()
        self._out.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False
