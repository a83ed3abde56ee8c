"""Embeddings on disk, one file per (image set content, matcher version), computed once and memory
mapped afterwards: an audit of FFHQ (70k) or CelebA (200k) embeds the training set once per matcher,
and later audits of other generators reuse it.

    store = EmbeddingStore("~/.cache/leakguard/embeddings")
    e = store.embeddings(ImageFiles("ffhq256.zip"), matcher)   # np.memmap float32 [N, D]

Images stream through in matcher.batch_size batches and embeddings go straight to a memory-mapped
.npy, so memory stays bounded for any N. A run that stops midway leaves no partial file (a killed one
at most a hidden .tmp beside it).
"""
import hashlib
import os
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from leakguard.atomic import AtomicFile, write_json
from leakguard.cache_dirs import embeddings_root
from leakguard.matchers.base import Matcher


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


class EmbeddingStore:
    def __init__(self, root: str | os.PathLike | None = None):
        """`root`: the cache folder; None: $LEAKGUARD_CACHE/embeddings (~/.cache/leakguard/embeddings)."""
        self.root = Path(root).expanduser() if root is not None else embeddings_root()

    def path(self, images, matcher: Matcher) -> Path:
        key = hashlib.sha256(f"{images.fingerprint}\0{matcher.version}".encode()).hexdigest()[:24]
        return self.root / f"{_safe(matcher.version)}-{key}.npy"

    def embeddings(self, images, matcher: Matcher, progress: bool = False) -> np.ndarray:
        """float32 [N, D] unit rows of `images` (ImageFiles or ImageTensor) under `matcher`, read-only."""
        path = self.path(images, matcher)
        if path.is_file():
            cached = np.load(path, mmap_mode="r")
            if cached.shape == (len(images), matcher.embedding_dim):
                return cached
        with AtomicFile(path) as out_file:
            out = np.lib.format.open_memmap(out_file.tmp, mode="w+", dtype=np.float32,
                                            shape=(len(images), matcher.embedding_dim))
            done = 0
            with tqdm(total=len(images), desc=f"embed {images!r} ({matcher.name})", unit="img",
                      disable=not progress) as bar:
                for batch in images.batches(matcher.batch_size):
                    e = matcher.embed(batch).numpy()          # [n, D]
                    out[done:done + len(e)] = e
                    done += len(e)
                    bar.update(len(e))
            out.flush()
            del out
        write_json(path.with_suffix(".json"),
                   {"images": repr(images), "fingerprint": images.fingerprint, "matcher": matcher.version,
                    "count": len(images), "dim": matcher.embedding_dim})
        return np.load(path, mmap_mode="r")
