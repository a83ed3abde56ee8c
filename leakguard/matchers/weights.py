"""Finding weight files, and the error that says which file a matcher needs and where users get it."""
from pathlib import Path


class WeightsMissing(FileNotFoundError):
    """A matcher's weights are not on this machine; the message names the file and its source."""


def require_file(matcher: str, path: str | Path | None, what: str, source: str) -> Path:
    """`path` as a Path if it is a file; otherwise an error naming `what` is needed and `source`."""
    if path is None:
        raise WeightsMissing(f"matcher {matcher!r} needs {what}; pass its path as weights=... "
                             f"(matcher.weights in a config). Usually from: {source}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsMissing(f"matcher {matcher!r}: weights file not found: {path}. It needs {what}, "
                             f"usually from: {source}")
    return path
