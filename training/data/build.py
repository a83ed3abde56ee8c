"""Builds a dataset zip (`training.data.zip_format`) from a folder of source images of any size.

Three source layouts, each a function yielding `SourceImage`s that `build_zip` decodes, crops,
resizes and writes:
    iter_flat(src)                         every image under a folder or zip; no identities (labels
                                           and identities of a dataset.json in the source carried over)
    iter_identity_folders(src)             SRC/<person>/...: one folder per person, ids 0..K-1 in
                                           sorted order of the folder names
    iter_celeba(src, identity_file)        CelebA's img_align_celeba/ and identity_CelebA.txt
"""
import io
import logging
import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from leakguard.atomic import write_json
from training.data.dataset import (READ_ERRORS, FolderSource, check_tables, is_hidden, is_image_name,
                                   open_source, read_error, read_tables)
from training.data.zip_format import DatasetZipWriter, Record

log = logging.getLogger(__name__)

TRANSFORMS = ("center-crop", "none")

# The face box the community crops from CelebA's aligned 178x218 images before resizing to 64 or
# 128 px: a 140x140 square, horizontally centred, 40 px from the top so the face sits in the middle.
CELEBA_SIZE = (178, 218)
CELEBA_BOX = (19, 40, 19 + 140, 40 + 140)  # left, top, right, bottom

_PROGRESS_EVERY_S = 10.0
_LIST_SKIPPED = 10  # skipped files logged by name; the rest are counted


@dataclass
class SourceImage:
    """One source file and what is known about it."""
    where: str                       # the file, as error messages name it
    read: Callable[[], bytes]        # its bytes
    label: int | None = None         # class index
    identity: int | None = None      # the person in the image
    identity_name: str | None = None  # what the person is called in the source (folder name)


@dataclass
class BuildSummary:
    dest: Path
    written: int                     # images in the zip
    resolution: int                  # px, square
    channels: int                    # 1 or 3
    identities: int                  # distinct identities written; 0 when the zip has none
    skipped: list[str] = field(default_factory=list)  # unreadable or missing sources left out
    identity_names_path: Path | None = None            # {id: folder name} beside the zip

    def line(self) -> str:
        names = f"; identity names in {self.identity_names_path}" if self.identity_names_path else ""
        return (f"wrote {self.written} images ({self.resolution}x{self.resolution}, {self.channels} channels), "
                f"{self.identities} identities, {len(self.skipped)} skipped -> {self.dest}{names}")


def _folder(src: str | Path) -> Path:
    root = Path(src)
    if not root.exists():
        raise FileNotFoundError(f"--source {root}: not found")
    if not root.is_dir():
        raise ValueError(f"--source {root}: expected a folder")
    return root


def _file_image(path: Path, **info) -> SourceImage:
    return SourceImage(where=str(path), read=partial(Path.read_bytes, path), **info)


def iter_flat(src: str | Path) -> Iterator[SourceImage]:
    """Every image under a folder (or in a zip), sorted by relative path. Class labels and
    identities in the source's dataset.json are carried over."""
    source = open_source(Path(src))
    names = source.image_names()
    if not names:
        raise ValueError(f"no images found in {src} (looked for .png, .jpg, .jpeg, .bmp, .webp)")
    labels, identities = read_tables(source)
    check_tables(source, names, {"labels": labels, "identities": identities})
    json_where = source.where("dataset.json")
    for key, table in (("labels", labels), ("identities", identities)):
        bad = [n for n in names if table is not None and type(table[n]) is not int]  # bool is no label
        if bad:
            raise ValueError(f'{json_where}: "{key}" entry of {bad[0]} is {str(table[bad[0]])[:80]}; the dataset '
                             "zip stores int class labels and int identities only")
    return (SourceImage(where=source.where(n), read=partial(_read_member, source, n),
                        label=None if labels is None else labels[n],
                        identity=None if identities is None else identities[n]) for n in names)


def _read_member(source, name: str) -> bytes:
    with source.open(name) as f:
        return f.read()


def iter_identity_folders(src: str | Path) -> Iterator[SourceImage]:
    """SRC/<person>/<image>: identity ids 0..K-1 follow the sorted folder names (string order:
    'p10' before 'p2'); images inside a person's folder are found recursively, sorted. A folder
    with no images gets no id."""
    root = _folder(src)
    loose = sorted(p for p in root.iterdir() if p.is_file() and is_image_name(p.name) and not is_hidden(p.name))
    if loose:
        raise ValueError(f"{loose[0]} is directly in {root}; --layout identity-folders expects one folder per "
                         f"person ({root}/<person>/<image>): move it into its person's folder or use --layout flat")
    people = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name))
    images, k = [], 0
    for person in people:
        names = FolderSource(person).image_names()
        if not names:
            log.warning("%s: no images, left out (gets no identity id)", person)
            continue
        images += [_file_image(person / n, identity=k, identity_name=person.name) for n in names]
        k += 1
    if not images:
        raise ValueError(f"no images found in the person folders of {root} "
                         "(looked for .png, .jpg, .jpeg, .bmp, .webp in <person>/ subfolders)")
    return iter(images)


def read_celeba_identities(identity_file: str | Path) -> list[tuple[str, int]]:
    """[(image name, identity)] from identity_CelebA.txt lines like '000001.jpg 2880', in file order."""
    path = Path(identity_file)
    if not path.is_file():
        raise FileNotFoundError(f"--celeba-identities {path}: not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file ({e})") from None
    rows, seen = [], {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            name, identity = parts[0], int(parts[1])
            if len(parts) != 2:
                raise ValueError
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{lineno}: expected '<image> <identity>' such as '000001.jpg 2880', "
                             f"got {line.strip()[:80]!r}") from None
        if name in seen:
            raise ValueError(f"{path}:{lineno}: {name} is listed again (first on line {seen[name]})")
        seen[name] = lineno
        rows.append((name, identity))
    if not rows:
        raise ValueError(f"{path}: no '<image> <identity>' lines")
    return rows


def iter_celeba(src: str | Path, identity_file: str | Path, skip_missing: bool = False) -> Iterator[SourceImage]:
    """The images listed in identity_CelebA.txt, in its order, with its identity ids. Images in
    the folder but not in the file are left out. Listed images that are missing are an error, or
    with `skip_missing` are yielded anyway so that build_zip counts them as skipped."""
    root = _folder(src)
    rows = read_celeba_identities(identity_file)
    present = set(os.listdir(root))
    missing = [n for n, _ in rows if n not in present and not (root / n).is_file()]
    if missing and not skip_missing:
        raise ValueError(f"{len(missing)} of the {len(rows)} images listed in {identity_file} are not in {root}: "
                         f"{', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}; "
                         "pass --skip-bad to leave them out")
    unlisted = len({n for n in present if is_image_name(n)} - {n for n, _ in rows})
    if unlisted:
        log.info("%s: %d images not listed in %s are left out", root, unlisted, identity_file)
    return (_file_image(root / n, identity=identity) for n, identity in rows)


def center_crop(img: Image.Image) -> Image.Image:
    """The largest centred square."""
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


def check_resolution(resolution: int) -> None:
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"--resolution {resolution}: StyleGAN2 needs a power of two >= 4 (e.g. 64, 128, 256)")


def _decode(image: SourceImage, mode: str) -> Image.Image:
    with Image.open(io.BytesIO(image.read())) as img:
        img.load()
        if img.mode in ("I", "F") or img.mode.startswith("I;"):
            raise ValueError(f"{image.where} has {img.mode} pixels (16-bit or float); convert it to 8-bit first")
        return img.convert(mode) if img.mode != mode else img.copy()


def _shape(img: Image.Image, image: SourceImage, resolution: int, transform: str) -> Image.Image:
    if transform == "none":
        if img.size != (resolution, resolution):
            raise ValueError(f"{image.where} is {img.size[0]}x{img.size[1]}, but --transform none needs every "
                             f"image to be {resolution}x{resolution} already; use --transform center-crop")
        return img
    img = center_crop(img)
    return img if img.size == (resolution, resolution) else img.resize((resolution, resolution), Image.LANCZOS)


def _first_resolution(img: Image.Image, image: SourceImage, transform: str) -> int:
    """Without --resolution the first image sets it: its side after cropping."""
    side = min(img.size) if transform == "center-crop" else img.size[0]
    if side < 4 or side & (side - 1):
        what = "the side of its centred square" if transform == "center-crop" else "its width"
        raise ValueError(f"no --resolution given, and the first image {image.where} ({img.size[0]}x{img.size[1]}) "
                         f"would set it to {side} px ({what}), which is not a power of two >= 4; "
                         "pass --resolution N (e.g. 64, 128, 256)")
    return side


def _check_build_options(dest: Path, resolution: int | None, transform: str, max_images: int | None) -> None:
    if dest.suffix.lower() != ".zip":
        raise ValueError(f"--dest {dest}: the dataset is written as a zip; use a name ending in .zip")
    if transform not in TRANSFORMS:
        raise ValueError(f"--transform {transform!r}: expected one of {', '.join(TRANSFORMS)}")
    if resolution is not None:
        check_resolution(resolution)
    if max_images is not None and max_images < 1:
        raise ValueError(f"--max-images {max_images}: must be >= 1")


def _decode_or_skip(image: SourceImage, mode: str, skip_bad: bool, skipped: list[str]) -> Image.Image | None:
    """The decoded image; None when it is unreadable and `skip_bad` (it is then counted in `skipped`)."""
    try:
        return _decode(image, mode)
    except READ_ERRORS as e:
        if not skip_bad:
            raise ValueError(f"{image.where}: cannot read image ({read_error(e)}); fix or remove the "
                             "file, or pass --skip-bad to skip unreadable images") from None
        if len(skipped) < _LIST_SKIPPED:
            log.warning("%s: skipped (%s)%s", image.where, read_error(e),
                        "; further skipped files are only counted" if len(skipped) == _LIST_SKIPPED - 1 else "")
        skipped.append(image.where)
        return None


def _celeba_box(img: Image.Image, image: SourceImage) -> Image.Image:
    if img.size != CELEBA_SIZE:
        raise ValueError(f"{image.where} is {img.size[0]}x{img.size[1]}; --celeba-crop expects CelebA's "
                         "aligned 178x218 images (img_align_celeba)")
    return img.crop(CELEBA_BOX)


def _write_image(writer: DatasetZipWriter, pixels: np.ndarray, image: SourceImage, xflip: bool) -> None:
    """pixels [H, W, C] uint8, and with `xflip` its mirror image right after it."""
    writer.add(Record(pixels, image.label, image.identity), source=image.where)
    if xflip:
        writer.add(Record(np.ascontiguousarray(pixels[:, ::-1]), image.label, image.identity),
                   source=f"{image.where} (mirrored)")


def build_zip(images: Iterable[SourceImage], dest: str | Path, resolution: int | None = None,
              transform: str = "center-crop", skip_bad: bool = False, *, celeba_crop: bool = False,
              max_images: int | None = None, grayscale: bool = False, xflip: bool = False) -> BuildSummary:
    """Writes `images` to the zip `dest`, all `resolution` px square (default: the first image's
    size after cropping); with `xflip` each is followed by its mirror image (same label and identity),
    and `max_images` still counts source images. Unreadable sources stop the build, or with `skip_bad` are counted and
    left out. With identity names (identity-folders) also writes DEST.identities.json {id: name}."""
    dest = Path(dest)
    _check_build_options(dest, resolution, transform, max_images)
    mode = "L" if grayscale else "RGB"
    skipped, names, ids = [], {}, set()
    taken = 0  # source images written
    started = last_report = time.monotonic()
    with DatasetZipWriter(dest) as writer:
        for image in images:
            if max_images is not None and taken >= max_images:
                break
            img = _decode_or_skip(image, mode, skip_bad, skipped)
            if img is None:
                continue
            if celeba_crop:
                img = _celeba_box(img, image)
            if resolution is None:
                resolution = _first_resolution(img, image, transform)
            pixels = np.asarray(_shape(img, image, resolution, transform), dtype=np.uint8)
            _write_image(writer, pixels[:, :, np.newaxis] if pixels.ndim == 2 else pixels, image, xflip)
            taken += 1
            if image.identity is not None:
                ids.add(image.identity)
                if image.identity_name is not None:
                    names[image.identity] = image.identity_name
            if time.monotonic() - last_report > _PROGRESS_EVERY_S:
                last_report = time.monotonic()
                log.info("%s: %d images written (%.0f s)", dest, writer.count, last_report - started)
        if writer.count == 0:
            raise ValueError(f"no images written to {dest}: every source image was skipped ({len(skipped)})")
        written = writer.count
    summary = BuildSummary(dest=dest, written=written, resolution=resolution, channels=1 if grayscale else 3,
                           identities=len(ids), skipped=skipped)
    if names:
        # Beside the zip, not in it: the zip's dataset.json keys are the ones the writer and the
        # official tools know. JSON object keys are strings, so ids are written as "0", "1", ...
        summary.identity_names_path = write_json(dest.with_suffix(".identities.json"),
                                                 {str(k): names[k] for k in sorted(names)})
    return summary


def export_zip(path: str | os.PathLike, dataset) -> Path:
    """Writes an in-memory dataset with identities (SynthFaces) as a StyleGAN2-ADA dataset zip with its
    identities table (zip_format's layout)."""
    with DatasetZipWriter(path) as writer:
        for i in range(len(dataset)):
            image, _ = dataset[i]  # [3, H, W]
            pixels = np.ascontiguousarray(image.transpose(1, 2, 0))  # [H, W, 3], as the writer takes it
            writer.add(Record(pixels=pixels, identity=dataset.get_identity(i)), source=f"{dataset.name} item {i}")
    return writer.path
