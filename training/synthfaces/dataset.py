"""SynthFaces as a torch Dataset (rendered lazily, cached in memory)."""
import multiprocessing
import operator

import numpy as np
import torch

from training.synthfaces.params import MAX_SEED, identity_params, nuisance_params
from training.synthfaces.populations import POPULATIONS
from training.synthfaces.render import MAX_RESOLUTION, MIN_RESOLUTION, render_face

# How each option is named in messages: the Python argument by default, the CLI flag from the CLI.
ARGUMENT_NAMES = {k: k for k in ("resolution", "num_identities", "images_per_identity", "identity_offset",
                                 "overrep_identity", "overrep_images", "seed", "population")}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def check_options(resolution, num_identities, images_per_identity, identity_offset, overrep_identity,
                  overrep_images, seed, population="all", names: dict = ARGUMENT_NAMES) -> None:
    """Raises ValueError naming the first bad option (as `names` calls it) and what is accepted."""
    def bad(arg, value, accepted):
        shown = f"{names[arg]} {value}" if names[arg].startswith("-") else f"{names[arg]}={value!r}"
        raise ValueError(f"{shown}: {accepted}")

    if not _is_int(resolution) or not MIN_RESOLUTION <= resolution <= MAX_RESOLUTION:
        bad("resolution", resolution, f"SynthFaces renders {MIN_RESOLUTION} to {MAX_RESOLUTION} px (an int)")
    for arg, value in (("num_identities", num_identities), ("images_per_identity", images_per_identity)):
        if not _is_int(value) or value < 1:
            bad(arg, value, "must be an int >= 1")
    if not _is_int(identity_offset) or identity_offset < 0 or identity_offset + num_identities > MAX_SEED:
        bad("identity_offset", identity_offset,
            f"must be an int >= 0 with offset + identities <= 2**32 (identities: {num_identities})")
    if not _is_int(seed) or not 0 <= seed < MAX_SEED:
        bad("seed", seed, "must be an int in [0, 2**32)")
    if population not in POPULATIONS:
        bad("population", population, "one of " + ", ".join(POPULATIONS))
    last = identity_offset + num_identities - 1
    if overrep_identity is None:
        if overrep_images:
            bad("overrep_images", overrep_images, f"needs {names['overrep_identity']}, the identity to give them to")
        return
    if not _is_int(overrep_identity) or not identity_offset <= overrep_identity <= last:
        bad("overrep_identity", overrep_identity, f"must be one of the dataset's identities, {identity_offset}..{last}")
    if not _is_int(overrep_images) or overrep_images <= images_per_identity:
        bad("overrep_images", overrep_images,
            f"must be an int > {names['images_per_identity']} ({images_per_identity}): it is the over-represented "
            "identity's total image count")


def _render_items(resolution: int, seed: int, population: str, items: list) -> np.ndarray:
    """[(identity_id, image_index), ...] -> uint8 [N, 3, H, W]; the unit of work of render_all's workers."""
    out = np.empty((len(items), 3, resolution, resolution), np.uint8)
    identity, last = None, None
    for k, (identity_id, image_index) in enumerate(items):
        if identity_id != last:  # items come identity by identity, so this runs once per person
            identity, last = identity_params(identity_id, seed, population), identity_id
        nuisance = nuisance_params(identity_id, image_index, seed)
        out[k] = render_face(identity, nuisance, resolution).transpose(2, 0, 1)
    return out


class SynthFaces(torch.utils.data.Dataset):
    """Procedural faces whose identity is known: `images_per_identity` images of each of `num_identities`
    people, ids identity_offset.., ordered identity by identity. Items are (uint8 [3, H, W], float32 [0]).

    Image k of person i is a pure function of (seed, population, i, k), so datasets that share a seed and
    population agree on every image they share, whatever their size or offset. `population` shifts the
    people's attribute frequencies (populations.POPULATIONS: "all", "public", "private").
    `overrep_identity` gets `overrep_images` images in all (a membership-inference target); the others keep `images_per_identity`.
    """

    def __init__(self, resolution: int = 32, num_identities: int = 100, images_per_identity: int = 20,
                 identity_offset: int = 0, overrep_identity: int | None = None, overrep_images: int = 0,
                 seed: int = 0, cache: bool = True, population: str = "all"):
        check_options(resolution, num_identities, images_per_identity, identity_offset, overrep_identity,
                      overrep_images, seed, population)
        self.resolution, self.seed, self.cache = int(resolution), int(seed), bool(cache)
        self.population = population
        self.num_channels, self.label_dim, self.has_labels = 3, 0, False
        self.image_shape = [3, self.resolution, self.resolution]
        ids = np.arange(identity_offset, identity_offset + num_identities, dtype=np.int64)
        counts = np.full(num_identities, images_per_identity, dtype=np.int64)
        if overrep_identity is not None:
            counts[overrep_identity - identity_offset] = overrep_images
        self.identities = np.repeat(ids, counts)  # [N] identity id of each item
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        self.image_indices = np.arange(len(self.identities), dtype=np.int64) - starts  # [N] k within its person
        self.name = f"synthfaces-{resolution}-ids{num_identities}x{images_per_identity}-seed{seed}"
        if identity_offset:
            self.name += f"-from{identity_offset}"
        if population != "all":
            self.name += f"-{population}"
        if overrep_identity is not None:
            self.name += f"-overrep{overrep_identity}x{overrep_images}"
        self._params = {}  # identity id -> IdentityParams, drawn on first use
        self._images = None  # uint8 [N, 3, H, W] once anything is cached
        self._cached = np.zeros(len(self.identities), dtype=bool)

    def __len__(self) -> int:
        return len(self.identities)

    def _index(self, i) -> int:
        try:
            k = operator.index(i)  # ints, numpy ints and one-element integer tensors
        except TypeError:
            raise IndexError(f"item {i!r}: SynthFaces items are indexed by an int") from None
        if not -len(self) <= k < len(self):
            raise IndexError(f"item {k} of a SynthFaces dataset of {len(self)}")
        return k % len(self)

    def _store(self, indices: np.ndarray, images: np.ndarray) -> None:
        if self._images is None:
            # np.empty leaves pages unmapped until written, so caching a few items stays cheap.
            self._images = np.empty((len(self),) + tuple(self.image_shape), np.uint8)
        self._images[indices] = images
        self._cached[indices] = True

    def render(self, i: int) -> np.ndarray:
        """Item i's image, uint8 [H, W, 3], rendered now (no cache)."""
        i = self._index(i)
        identity_id = int(self.identities[i])
        if identity_id not in self._params:
            self._params[identity_id] = identity_params(identity_id, self.seed, self.population)
        nuisance = nuisance_params(identity_id, int(self.image_indices[i]), self.seed)
        return render_face(self._params[identity_id], nuisance, self.resolution)

    def __getitem__(self, i) -> tuple[np.ndarray, np.ndarray]:
        i = self._index(i)
        if self._cached[i]:
            image = self._images[i].copy()
        else:
            image = np.ascontiguousarray(self.render(i).transpose(2, 0, 1))  # [3, H, W]
            if self.cache:
                self._store(np.array([i]), image[None])
        return image, np.zeros([0], dtype=np.float32)

    def get_identity(self, i) -> int:
        return int(self.identities[self._index(i)])

    def render_all(self, num_workers: int = 1) -> np.ndarray:
        """Every image, uint8 [N, 3, H, W]. With cache=True this fills the cache and returns it read-only."""
        if not _is_int(num_workers) or num_workers < 1:
            raise ValueError(f"num_workers={num_workers!r}: must be an int >= 1 (processes that render)")
        todo = np.flatnonzero(~self._cached) if self.cache else np.arange(len(self))
        items = [(int(self.identities[i]), int(self.image_indices[i])) for i in todo]
        workers = min(num_workers, max(1, len(items) // 64))  # tiny jobs are not worth a process
        if workers == 1:
            images = _render_items(self.resolution, self.seed, self.population, items)
        else:
            # Chunks of consecutive items keep each person's identity_params in one worker. fork starts
            # fast and rendering never touches torch in the children; spawn where fork is missing.
            ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
            bounds = np.linspace(0, len(items), 4 * workers + 1).astype(int)
            chunks = [items[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
            with ctx.Pool(workers) as pool:
                images = np.concatenate(pool.starmap(_render_items, [(self.resolution, self.seed, self.population, c)
                                                              for c in chunks]))
        if not self.cache:
            return images
        if len(todo):
            self._store(todo, images)
        view = self._images.view()
        view.flags.writeable = False
        return view

    def __repr__(self) -> str:
        return f"SynthFaces({self.name!r}, {len(self)} images, cached {int(self._cached.sum())})"
