"""Does the alignment a matcher assumes fit the images? On a sample of the training images, dlib's
face detector finds each face, and its box is compared with the box the alignment assumes:

    ffhq  the face lies in FFHQ_BOX of the image (where dlib finds FFHQ-aligned faces)
    none  the whole image is the face box (a crop made from a detector box)
    detect  nothing to check: the matcher finds each face itself

A face fits when every edge of the detected box lies within MAX_OFFSET (10%) of the image side of
the assumed box's edge (FFHQ-aligned faces: within 2% on average, 8% at most); when the median image
does not fit, the matcher embeds background and hair rather than the face it was trained on, its
thresholds stop meaning what they say, and the audit warns. When the detector finds faces in fewer than half
of the sample (drawn faces such as SynthFaces, tiny images), nothing can be checked and nothing is said.
"""
import numpy as np

from leakguard.matchers.dlib_matcher import FFHQ_BOX, import_dlib, largest_face

ASSUMED_BOX = {"ffhq": FFHQ_BOX, "none": (0.0, 0.0, 1.0, 1.0)}  # (left, top, right, bottom), image fractions
MAX_OFFSET = 0.1    # largest edge offset of a fitting face, in image sides
SAMPLE = 16         # images checked


def offset(a, b) -> float:
    """The largest distance between corresponding edges of two (left, top, right, bottom) boxes."""
    return max(abs(x - y) for x, y in zip(a, b))


def detected_boxes(images, sample: int = SAMPLE) -> tuple[list, int]:
    """dlib's largest face box in each of `sample` evenly spaced images of the set (image fractions),
    and how many were looked at."""
    detector = import_dlib().get_frontal_face_detector()
    picks = np.unique(np.linspace(0, len(images) - 1, min(sample, len(images))).astype(int))
    boxes = []
    for i in picks:
        rgb = np.ascontiguousarray(images.image(int(i)))             # [H, W, 3] uint8
        # Upsampling finds small faces; on large images it only costs time (4x the pixels).
        r = largest_face(detector, rgb, upsample=1 if max(rgb.shape[:2]) < 512 else 0)
        if r is not None:
            h, w = rgb.shape[:2]
            boxes.append((r.left() / w, r.top() / h, (r.right() + 1) / w, (r.bottom() + 1) / h))
    return boxes, len(picks)


def alignment_warning(images, alignment: str | None, what: str = "training images") -> str | None:
    """A warning when faces in `images` are not where `alignment` assumes them, else None."""
    if alignment not in ASSUMED_BOX:
        return None
    try:
        boxes, looked = detected_boxes(images)
    except ImportError:
        return None                  # no dlib here: the check cannot run
    if len(boxes) < looked / 2:
        return None
    offsets = [offset(b, ASSUMED_BOX[alignment]) for b in boxes]
    median = float(np.median(offsets))
    if median <= MAX_OFFSET:
        return None
    misfits = sum(o > MAX_OFFSET for o in offsets)
    return (f"alignment {alignment!r} assumes the face box {ASSUMED_BOX[alignment]} of each image, but dlib's "
            f"detector finds the faces elsewhere in {misfits} of {len(boxes)} sampled {what} (median edge "
            f"offset {median:.2f} of the image side, more than {MAX_OFFSET:g}); if they are not "
            f"{'FFHQ-aligned' if alignment == 'ffhq' else 'detector-box'} crops, pass --alignment detect")
