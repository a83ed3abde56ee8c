"""Training images from a folder or a StyleGAN2-ADA dataset zip, with the identity of each image.

Both sources hold image files (.png .jpg .jpeg .bmp .webp, found recursively, sorted by their path
relative to the root, hidden files and __MACOSX/ left out) and an optional dataset.json at the root:
    {"labels": [[name, label], ...] or null, "identities": [[name, identity_id], ...] or null}
with names relative to the root, '/'-separated (the layout `training.data.zip_format` writes and the
official `dataset_tool.py` reads). Pixels come back exactly as stored: `resolution` is a check, never
a resize; `leakguard dataset` is the place to resize.
"""
import io
import json
import logging
import os
import struct
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")

# What PIL and zipfile raise on a file that is not a readable image: truncated data and bad headers
# (OSError, incl. UnidentifiedImageError), broken chunks (SyntaxError), short reads (EOFError,
# struct.error), a damaged zip member (BadZipFile) and absurd sizes (DecompressionBombError).
READ_ERRORS = (OSError, SyntaxError, EOFError, struct.error, zipfile.BadZipFile, Image.DecompressionBombError)

# Images above this many files log their progress while being checked.
_PROGRESS_MIN_IMAGES = 2000
_PROGRESS_EVERY_S = 10.0
_CHUNK = 256  # images handed to the decoding threads at a time
_VERIFY_THREADS = min(4, os.cpu_count() or 1)
_THREADS_FROM_PX = 128  # image side from which verify decodes in threads


class DatasetError(ValueError):
    """A dataset that cannot be used, with the file or entry named."""


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def is_hidden(part: str) -> bool:
    # '.DS_Store', '._img.png' (macOS resource forks) and '__MACOSX/' are never training images.
    return part.startswith(".") or part == "__MACOSX"


class FolderSource:
    """Image files under a directory, named by their '/'-separated path relative to it."""

    def __init__(self, root: Path):
        self.root = root
        self.location = str(root)

    def image_names(self) -> list[str]:
        names = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not is_hidden(d)]
            rel = PurePosixPath(Path(dirpath).relative_to(self.root).as_posix())
            names += [str(rel / f) for f in filenames if is_image_name(f) and not is_hidden(f)]
        return sorted(names)

    def open(self, name: str):
        return open(self.root / name, "rb")

    def read_json(self) -> bytes | None:
        path = self.root / "dataset.json"
        return path.read_bytes() if path.is_file() else None

    def where(self, name: str) -> str:
        return str(self.root / name)


class ZipSource:
    """Members of a zip file. The handle is opened lazily and re-opened in every process: DataLoader
    workers fork, and a ZipFile shared across processes reads from one file offset and corrupts data."""

    def __init__(self, path: Path):
        self.path = path
        self.location = str(path)
        self._zip = None
        self._pid = None
        self._lock = None
        self._file()  # fail now, not in a worker, when the file is not a zip

    def _file(self) -> zipfile.ZipFile:
        if self._zip is None or self._pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except zipfile.BadZipFile as e:
                raise DatasetError(f"{self.path} is not a readable zip file ({e}); "
                                   "data.path must be an image folder or a dataset zip") from None
            self._pid = os.getpid()
            self._lock = threading.Lock()
        return self._zip

    def __getstate__(self):
        # Workers started by 'spawn' get a pickled copy: the handle cannot travel and is re-opened.
        return {**self.__dict__, "_zip": None, "_pid": None, "_lock": None}

    def image_names(self) -> list[str]:
        return sorted(n for n in self._file().namelist()
                      if is_image_name(n) and not any(is_hidden(p) for p in n.split("/")))

    def open(self, name: str):
        # Read the member whole: PIL seeks back while identifying a file, which a zip stream does slowly.
        # The lock: construction decodes in threads, and a ZipFile is not documented as thread-safe.
        zf = self._file()
        with self._lock:
            return io.BytesIO(zf.read(name))

    def read_json(self) -> bytes | None:
        try:
            return self._file().read("dataset.json")
        except KeyError:
            return None

    def where(self, name: str) -> str:
        return f"{name} in {self.path}"


def open_source(path: Path) -> FolderSource | ZipSource:
    """The folder or zip at `path`."""
    if not path.exists():
        raise FileNotFoundError(f"dataset not found: {path} (expected an image folder or a .zip)")
    if path.is_dir():
        return FolderSource(path)
    return ZipSource(path)


def read_tables(source: FolderSource | ZipSource) -> tuple[dict | None, dict | None]:
    """(labels, identities) from the source's dataset.json as {image name: value}; None where absent."""
    raw = source.read_json()
    if raw is None:
        return None, None
    where = source.where("dataset.json")
    try:
        meta = json.loads(raw)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise DatasetError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DatasetError(f'{where}: expected an object with "labels" and/or "identities", '
                           f"got a JSON {type(meta).__name__}")
    return _table(meta.get("labels"), "labels", where), _table(meta.get("identities"), "identities", where)


def _table(value, key: str, where: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise DatasetError(f'{where}: "{key}" must be a list of [image name, value] pairs or null, '
                           f"got a JSON {type(value).__name__}")
    table = {}
    for k, entry in enumerate(value):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DatasetError(f'{where}: "{key}"[{k}] must be [image name, value], got {str(entry)[:80]}')
        if entry[0] in table:
            raise DatasetError(f'{where}: "{key}" lists {entry[0]} twice')
        table[entry[0]] = entry[1]
    return table


def check_tables(source: FolderSource | ZipSource, names: list[str], tables: dict[str, dict | None]) -> None:
    """Every image has an entry in each table present, and every entry names an image."""
    where = source.where("dataset.json")
    known = set(names)
    for key, table in tables.items():
        if table is None:
            continue
        unknown = [n for n in table if n not in known]
        if unknown:
            raise DatasetError(f'{where}: "{key}" has an entry for {unknown[0]}, which is not an image in '
                               f"{source.location} ({len(unknown)} such entries); "
                               "names must be image paths relative to the dataset root, '/'-separated")
        missing = [n for n in names if n not in table]
        if missing:
            raise DatasetError(f'{source.where(missing[0])} has no entry in "{key}" of {where} '
                               f"({len(missing)} images without one); when the table is present every "
                               "image needs an entry")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def parse_labels(table: dict, names: list[str], where: str) -> tuple[np.ndarray, int]:
    """Labels of `names` as the official tool reads them: ints are class indices (one-hot of size
    max+1), lists of numbers are used as they are. Returns (int64 [N] or float32 [N, D], label_dim)."""
    values = [table[n] for n in names]
    if all(_is_int(v) for v in values):
        for n, v in zip(names, values):
            if v < 0:
                raise DatasetError(f'{where}: label of {n} is {v}; class labels are ints >= 0')
        labels = np.asarray(values, dtype=np.int64)
        return labels, int(labels.max()) + 1
    first = values[0]
    for n, v in zip(names, values):
        if not (isinstance(v, list) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
            raise DatasetError(f"{where}: label of {n} is {str(v)[:80]}; a label is an int class index "
                               "or a list of numbers, the same kind for every image")
        if not isinstance(first, list) or len(v) != len(first):
            raise DatasetError(f"{where}: label of {n} has {len(v)} values but label of {names[0]} has "
                               f"{str(first)[:80]}; vector labels must all have one length")
    return np.asarray(values, dtype=np.float32), len(first)


def read_error(e: Exception) -> str:
    """A PIL/zip exception as a short reason (UnidentifiedImageError's own text is an object repr)."""
    if isinstance(e, UnidentifiedImageError):
        return "not an image file PIL can identify"
    return f"{type(e).__name__}: {e}"


def _channels(img: Image.Image, where: str) -> int:
    # 'L' stays one channel and 'RGB' three; other 8-bit modes (RGBA, LA, P, CMYK, YCbCr, 1) are
    # converted to RGB when read, dropping alpha. 16-bit and float images would be clipped by PIL's
    # conversion, so they are refused instead.
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
        raise DatasetError(f"{where} has {img.mode} pixels (16-bit or float); convert it to 8-bit, "
                           "e.g. with leakguard dataset")
    return 1 if img.mode == "L" else 3


def _pixels(img: Image.Image, channels: int) -> np.ndarray:
    """[C, H, W] uint8 pixels of an open image."""
    if img.mode != ("L" if channels == 1 else "RGB"):
        img = img.convert("RGB")
    array = np.asarray(img, dtype=np.uint8)  # [H, W] or [H, W, 3]
    return array[np.newaxis] if array.ndim == 2 else array.transpose(2, 0, 1)


class ImageDataset(torch.utils.data.Dataset):
    """Images for StyleGAN2 training (the official `ImageFolderDataset`, extended with identities).

    Items are (uint8 [C, H, W], float32 [label_dim]). With xflip the mirrored copies follow the
    originals (item n + i mirrors item i) and share their identity. `max_size` keeps the first
    max_size usable images in sorted order (no seed: the same subset every time, before xflip).
    Construction checks every image: one size, square, a power of two, `resolution` when given, and,
    with `verify`, a full decode so a truncated file fails now instead of mid-run. Unreadable files
    raise DatasetError, or with `skip_bad` are left out and listed in `skipped`.
    """

    def __init__(self, path: str | Path, resolution: int | None = None, use_labels: bool = False,
                 xflip: bool = False, skip_bad: bool = False, max_size: int | None = None, verify: bool = True):
        self.path = Path(path)
        self.name = self.path.stem
        self.xflip = xflip
        if max_size is not None and max_size < 1:
            raise DatasetError(f"data.max_size={max_size}: must be >= 1 images, or null for all")
        self._source = open_source(self.path)
        names = self._source.image_names()
        if not names:
            raise DatasetError(f"no images found in {self.path} (looked for {', '.join(IMAGE_EXTENSIONS)})")
        label_table, identity_table = read_tables(self._source)
        check_tables(self._source, names, {"labels": label_table, "identities": identity_table})

        self.skipped: list[str] = []
        self._names = self._scan(names, resolution, verify, skip_bad, max_size)
        self.num_skipped = len(self.skipped)
        if self.skipped:
            log.warning("%s: skipped %d unreadable images (data.skip_bad=true), first: %s",
                        self.path, self.num_skipped, ", ".join(self.skipped[:3]))
        self.image_shape = [self.num_channels, self.resolution, self.resolution]

        self._labels, self.label_dim = None, 0
        if use_labels and label_table is not None:
            json_where = self._source.where("dataset.json")
            # label_dim comes from all images so that max_size or skipped files never change it.
            _, self.label_dim = parse_labels(label_table, names, json_where)
            self._labels, _ = parse_labels(label_table, self._names, json_where)
        elif use_labels:
            log.warning("%s: use_labels is set but the dataset has no labels; training unconditionally", self.path)
        self.has_labels = self.label_dim > 0

        self.identities = None
        if identity_table is not None:
            json_where = self._source.where("dataset.json")
            for n in self._names:
                if not _is_int(identity_table[n]):
                    raise DatasetError(f'{json_where}: identity of {n} is {str(identity_table[n])[:80]}; '
                                       "identities are ints")
            ids = np.asarray([identity_table[n] for n in self._names], dtype=np.int64)
            self.identities = np.tile(ids, 2) if xflip else ids

    @property
    def names(self) -> list[str]:
        """Names of the images used, in item order (without the xflip copies)."""
        return list(self._names)

    def _probe(self, name: str, verify: bool) -> tuple[tuple[int, int], int] | Exception:
        """(size, channels) of one image, decoding it fully with `verify`; the read error if it fails."""
        try:
            with self._source.open(name) as f, Image.open(f) as img:
                size, channels = img.size, _channels(img, self._source.where(name))
                if verify:
                    img.load()  # PIL raises on truncated data only when decoding
            return size, channels
        except READ_ERRORS as e:
            return e

    def _scan(self, names: list[str], resolution: int | None, verify: bool, skip_bad: bool,
              max_size: int | None) -> list[str]:
        """The usable images among `names`, in order: checks sizes and channels, and reads each file."""
        kept, first, first_size = [], None, None
        progress = len(names) >= _PROGRESS_MIN_IMAGES
        started = last_report = time.monotonic()
        if progress:
            log.info("%s: checking %d images%s", self.path, len(names), " (full decode)" if verify else "")
        # PIL releases the GIL while decoding, so threads speed up `verify` on large images (1.5-1.8x
        # on 2 cores at 256 px); headers and small images are Python-bound and faster in one thread.
        # The first chunk runs in one thread and tells the size. Chunks keep the results in order and,
        # with max_size, stop the decoding close to where the kept images end.
        with ThreadPoolExecutor(_VERIFY_THREADS) as pool:
            k = 0
            while k < len(names) and (max_size is None or len(kept) < max_size):
                threaded = verify and _VERIFY_THREADS > 1 and first_size and first_size[0] >= _THREADS_FROM_PX
                mapper = pool.map if threaded else map
                chunk = names[k:k + (_CHUNK if max_size is None else min(_CHUNK, max_size - len(kept)))]
                k += len(chunk)
                for name, result in zip(chunk, mapper(self._probe, chunk, [verify] * len(chunk))):
                    where = self._source.where(name)
                    if isinstance(result, Exception):
                        if not skip_bad:
                            raise DatasetError(f"{where}: cannot read image ({read_error(result)}); fix or remove "
                                               "the file, or set data.skip_bad=true to skip unreadable images")
                        self.skipped.append(name)
                        continue
                    size, channels = result
                    if first is None:
                        first, first_size = name, size
                        self._check_size(where, size, resolution)
                        self.num_channels, self.resolution = channels, size[0]
                    elif size != first_size:
                        raise DatasetError(f"images differ in size: {self._source.where(first)} is "
                                           f"{first_size[0]}x{first_size[1]} but {where} is {size[0]}x{size[1]}; "
                                           "rebuild the dataset at one size with `leakguard dataset --resolution N`")
                    elif channels != self.num_channels:
                        raise DatasetError(f"images differ in channels: {self._source.where(first)} has "
                                           f"{self.num_channels} but {where} has {channels}; rebuild the dataset "
                                           "with `leakguard dataset` (writes every image as RGB)")
                    kept.append(name)
                if progress and time.monotonic() - last_report > _PROGRESS_EVERY_S:
                    last_report = time.monotonic()
                    log.info("%s: checked %d/%d images (%.0f s)", self.path, k, len(names), last_report - started)
        if not kept:
            raise DatasetError(f"{self.path}: all {len(names)} images are unreadable (skipped with data.skip_bad)")
        return kept

    def _check_size(self, where: str, size: tuple[int, int], resolution: int | None) -> None:
        w, h = size
        if w != h or w < 4 or w & (w - 1):
            raise DatasetError(f"{where} is {w}x{h}; StyleGAN2 needs square images whose side is a power of "
                               "two (4, 8, ..., 1024): rebuild the dataset with `leakguard dataset --resolution N`")
        if resolution is not None and resolution != w:
            raise DatasetError(f"data.resolution={resolution} but the images in {self.path} are {w}x{h}; "
                               f"set data.resolution={w}, or rebuild the dataset with "
                               f"`leakguard dataset --resolution {resolution}`")

    def __len__(self) -> int:
        return len(self._names) * (2 if self.xflip else 1)

    def _raw_index(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} of a dataset of {len(self)}")
        return i % len(self) % len(self._names)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        raw = self._raw_index(i)
        where = self._source.where(self._names[raw])
        try:
            with self._source.open(self._names[raw]) as f, Image.open(f) as img:
                image = _pixels(img, self.num_channels)  # [C, H, W]
        except READ_ERRORS as e:
            raise DatasetError(f"{where}: cannot read image ({read_error(e)}); fix or remove the "
                               "file and restart (data.skip_bad=true skips unreadable files at start-up)") from None
        if list(image.shape) != self.image_shape:
            raise DatasetError(f"{where} is now {list(image.shape)} but was {self.image_shape} when the "
                               "dataset was opened; was it changed during training?")
        if i % len(self) >= len(self._names):
            image = np.ascontiguousarray(image[:, :, ::-1])
        return image, self.get_label(i)

    def get_label(self, i: int) -> np.ndarray:
        """float32 [label_dim]: one-hot for class labels, the vector itself for vector labels."""
        raw = self._raw_index(i)
        if self._labels is None:
            return np.zeros([0], dtype=np.float32)
        if self._labels.dtype == np.int64:
            onehot = np.zeros([self.label_dim], dtype=np.float32)
            onehot[self._labels[raw]] = 1
            return onehot
        return self._labels[raw].copy()

    def get_identity(self, i: int) -> int:
        if self.identities is None:
            raise DatasetError(f'{self.path} has no identities (its dataset.json has no "identities" table); '
                               "build one with `leakguard dataset --layout identity-folders` or `--layout celeba`")
        self._raw_index(i)  # bounds check
        return int(self.identities[i % len(self)])
