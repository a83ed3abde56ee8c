"""The config's error type and the one-line check its validators share (training.config for the schema's
values, training.dp.refusals for what DP-SGD forbids): each error names the key, the value and what
would be accepted."""


class ConfigError(ValueError):
    """A config file or override that does not fit the schema; names the key and what is valid."""


def require(ok: bool, key: str, value, accepted: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not valid; expected {accepted}")
