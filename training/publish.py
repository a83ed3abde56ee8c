"""Moving a finished temporary file into place, so readers never see half a file."""
import os
from pathlib import Path


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """fsyncs `tmp`, gives it the permissions a normally created file would get (mkstemp makes
    0600), and renames it over `path` atomically."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, Path(path))
