"""Image sets the audit embeds: a dataset zip or image folder read lazily in batches (with identities
from dataset.json when it has them), or images already in memory such as generated samples.

Each set has a `fingerprint`, a hash of its content, so embeddings computed once are found again
(leakguard.audit.store) however the file is named or moved.
"""
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from leakguard.identity_data import IdentityDataError, identity_table, listing


class ImageFiles:
    """A dataset zip or a folder of images, in the sorted order of the image names."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise FileNotFoundError(f"image set not found: {self.path} (expected a dataset zip or an image folder)")
        with listing(self.path) as (names, meta, _):
            self.names, self._meta = names, meta
        if not self.names:
            raise IdentityDataError(f"{self.path}: no images found (.png, .jpg, .jpeg, .bmp, .webp); "
                                    "supply a folder or zip of face images")
        self._fingerprint = None

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"ImageFiles({str(self.path)!r}, {len(self)} images)"

    @property
    def identities(self) -> np.ndarray:
        """int64 [N] identity ids from dataset.json; an error naming the file when it has none."""
        table = identity_table(self._meta, str(self.path))
        missing = [n for n in self.names if n not in table]
        if missing:
            raise IdentityDataError(f"{self.path}: {len(missing)} image(s) have no identity in dataset.json, "
                                    f"first {missing[0]}; every image needs one")
        return np.array([table[n] for n in self.names], np.int64)

    @property
    def identity_names(self) -> dict[int, str]:
        """{identity id: name} from DATASET.identities.json beside a dataset zip (what `leakguard dataset
        --layout identity-folders` writes), or {} when there is none."""
        path = self.path.with_suffix(".identities.json")
        if self.path.is_dir() or not path.is_file():
            return {}
        try:
            table = json.loads(path.read_text())
            return {int(k): str(v) for k, v in table.items()}
        except (ValueError, AttributeError) as e:
            raise IdentityDataError(f"{path}: not an identities file ({{\"id\": \"name\", ...}}): {e}") from None

    def label(self, i: int) -> str:
        """What image i is called: its file name in the folder or zip."""
        return self.names[i]

    @property
    def has_identities(self) -> bool:
        try:
            self.identities
        except IdentityDataError:
            return False
        return True

    def batches(self, batch_size: int, first: int = 0) -> Iterator[torch.Tensor]:
        """uint8 [n, 3, H, W] RGB batches in order, from image `first` on; every image must have one size."""
        with listing(self.path) as (_, _, read):
            shape = None
            for start in range(first, len(self.names), batch_size):
                out = []
                for name in self.names[start:start + batch_size]:
                    pixels = _decode(read(name), f"{name} in {self.path}")
                    if shape is None:
                        shape = pixels.shape
                    elif pixels.shape != shape:
                        raise IdentityDataError(f"{name} in {self.path} is {pixels.shape[1]}x{pixels.shape[0]}, "
                                                f"but {self.names[0]} is {shape[1]}x{shape[0]}; "
                                                "all images must have one size")
                    out.append(pixels.transpose(2, 0, 1))
                yield torch.from_numpy(np.stack(out))

    def image(self, i: int) -> np.ndarray:
        """uint8 [H, W, 3] of image i (for report grids)."""
        with listing(self.path) as (_, _, read):
            return _decode(read(self.names[i]), f"{self.names[i]} in {self.path}")

    @property
    def fingerprint(self) -> str:
        """sha256 over the image names and bytes (a zip's CRC-32s and sizes stand for its bytes: the
        same content, read from the central directory without decompressing)."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            if self.path.is_dir():
                for name in self.names:
                    h.update(name.encode() + b"\0" + (self.path / name).read_bytes())
            else:
                with zipfile.ZipFile(self.path) as zf:
                    for name in self.names:
                        info = zf.getinfo(name)
                        h.update(f"{name}\0{info.CRC:08x}\0{info.file_size}\n".encode())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


class ImageTensor:
    """Images in memory (e.g. generated samples): uint8 [N, 3, H, W], with a label per image (e.g.
    'seed0042', as `leakguard generate` names the file) or their positions."""

    def __init__(self, images: torch.Tensor, name: str = "images", labels: list[str] | None = None,
                 identities: np.ndarray | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{name}: expected uint8 [N, 3, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{name}: {len(labels)} labels for {len(images)} images")
        if identities is not None and len(identities) != len(images):
            raise ValueError(f"{name}: {len(identities)} identities for {len(images)} images")
        self.images, self.name, self.labels = images.contiguous(), name, labels
        self._identities = None if identities is None else np.asarray(identities, np.int64)
        self._fingerprint = None

    @property
    def identities(self) -> np.ndarray:
        """int64 [N] identity ids: given for an in-memory training set; generated images have none."""
        if self._identities is None:
            raise IdentityDataError(f"{self.name}: these images have no identity labels")
        return self._identities

    @property
    def has_identities(self) -> bool:
        return self._identities is not None

    @property
    def identity_names(self) -> dict[int, str]:
        return {}  # ids only: in-memory sets carry no folder names

    def label(self, i: int) -> str:
        return self.labels[i] if self.labels is not None else f"#{i}"

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"ImageTensor({self.name!r}, {len(self)} images)"

    def batches(self, batch_size: int, first: int = 0) -> Iterator[torch.Tensor]:
        yield from self.images[first:].split(batch_size)

    def image(self, i: int) -> np.ndarray:
        return self.images[i].permute(1, 2, 0).numpy()  # [H, W, 3]

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(str(tuple(self.images.shape)).encode())
            h.update(self.images.numpy().tobytes())
            if self._identities is not None:
                h.update(self._identities.tobytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint


def _decode(data: bytes, where: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))  # [H, W, 3]
    except (OSError, ValueError) as e:
        raise IdentityDataError(f"{where}: cannot be read as an image ({e})") from None
