"""The LEAKGUARD_OPS switch, read when asked (never at import), without torch: '' (each op picks the fastest
implementation available), 'strict' (a fallback to the reference is an error) or 'ref' (the reference everywhere)."""
import os

MODES = ("", "strict", "ref")


def mode() -> str:
    """The switch's value; another value is refused naming it."""
    value = os.environ.get("LEAKGUARD_OPS", "").strip().lower()
    if value not in MODES:
        raise ValueError(f"LEAKGUARD_OPS={value!r} is not one of 'strict', 'ref' (or unset)")
    return value
