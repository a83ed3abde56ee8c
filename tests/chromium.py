"""Headless Chromium for the tests that check a report page draws its plots: a screenshot of the page
against a control copy with the plots' images removed (Debian's `chromium`; tests skip without it)."""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image


def chromium() -> str | None:
    return next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))), None)


def screenshot(browser: str, html: Path, png: Path, height: int = 2400) -> np.ndarray:
    """[H, W, 3] int16: the page rendered in a 1400 x `height` window."""
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size=1400,{height}", f"--screenshot={png}", html.as_uri()],
                   check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB")).astype(np.int16)


def without_images(html: str) -> str:
    """The page with every embedded PNG emptied: the control of a plot check."""
    return re.sub(r'src="data:image/png;base64,[^"]+"', 'src=""', html)


def coloured_pixels(rgb: np.ndarray) -> int:
    """Saturated pixels: plots' curves and points (the pages' text and tables are grey)."""
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 80).sum())
