"""Why torch.load(weights_only=True) refused a file, in words a user can act on.

torch's own message advises re-running with weights_only=False: for a file that asks for
`posix.system`, that advice runs the attacker's code. LeakGuard never passes it on; it names the
global the file asked for, or torch's first sentence otherwise.
"""
import re

_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def load_failure(e: BaseException) -> str:
    """A one-line reason for a failed weights-only torch.load, without any advice to load unsafely."""
    text = str(e)
    found = _GLOBAL.search(text)
    if "weights_only" in text and found:
        return (f"it asks for the Python object {found.group(1)}, which a weights-only load refuses (loading it "
                f"could run code; nothing was run)")
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(e).__name__)
    first = re.split(r"(?<=\.)\s", first)[0]  # the first sentence
    if "weights_only" in first and "False" in first:
        first = "not a file a weights-only load can read"
    return f"{type(e).__name__}: {first[:200]}"
