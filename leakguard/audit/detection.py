"""Which images a matcher's own face detector finds a face in, per image.

    if has_detector(matcher):
        found = detected_faces(generated, matcher)     # [G] bool

Only the dlib matcher has a detector: dlib's HOG frontal face detector, the one its alignment='detect'
uses, with the matcher's `upsample` (1 by default: faces down to about 40 px; an image of 32 px holds
none it can find). The detector runs whatever the matcher's alignment is, so with 'ffhq' or 'none' (no
detection while embedding) the audit still learns which fakes hold a face. An image counts as a face
when the detector returns at least one box (any score: dlib's own threshold of 0). Nothing is cached:
generated images change with every generator, and the embedding cache keeps one file per matcher pass.
"""
import numpy as np
from tqdm import tqdm

from leakguard.matchers.base import Matcher
from leakguard.matchers.dlib_matcher import DlibMatcher, largest_face, to_rgb_uint8


def has_detector(matcher: Matcher) -> bool:
    return isinstance(matcher, DlibMatcher)


def detected_faces(images, matcher: DlibMatcher, progress: bool = False) -> np.ndarray:
    """[N] bool: whether the matcher's detector finds a face in each image of `images` (ImageFiles or
    ImageTensor), read matcher.batch_size images at a time."""
    if not has_detector(matcher):
        raise ValueError(f"matcher {matcher.name}: has no face detector (only dlib has one)")
    found = []
    with tqdm(total=len(images), desc=f"detect faces in {images!r} ({matcher.name})", unit="img",
              disable=not progress) as bar:
        for batch in images.batches(matcher.batch_size):
            rgb = to_rgb_uint8(batch)                                           # [n, H, W, 3]
            found += [largest_face(matcher.detector, rgb[i], matcher.upsample) is not None for i in range(len(rgb))]
            bar.update(len(rgb))
    return np.array(found, bool)
