"""Network records: a module as plain data ({'class', 'kwargs', 'state_dict'}) and back, shared by
LeakGuard checkpoints (checkpoint.py), training snapshots (snapshot.py) and the official-pickle
importer (official.py). Classes come from the registry `training.networks.NETWORK_CLASSES`, never
from a name imported out of a file.
"""
from torch import nn

from leakguard.torch_files import CheckpointError
from training.networks import NETWORK_CLASSES

_PLAIN = (str, int, float, bool, type(None))


def plain(value, where: str = "kwargs"):
    """Deep-copies kwargs into dicts, lists and scalars (what weights_only loading accepts)."""
    if isinstance(value, dict):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, _PLAIN):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return value.item()
    raise CheckpointError(f"{where}: {type(value).__name__} values cannot be stored in a checkpoint")


def network_record(module: nn.Module) -> dict:
    name = type(module).__name__
    if NETWORK_CLASSES.get(name) is not type(module):
        raise CheckpointError(f"cannot checkpoint a {name}; known networks: {', '.join(NETWORK_CLASSES)}")
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return {"class": name, "kwargs": plain(module.init_kwargs), "state_dict": state}


def build_network(record: dict, where: str) -> nn.Module:
    """Rebuilds a module from {'class', 'kwargs', 'state_dict'}; `where` names it in errors."""
    cls = NETWORK_CLASSES.get(record.get("class"))
    if cls is None:
        raise CheckpointError(f"{where}: unknown network class {record.get('class')!r}; "
                              f"known: {', '.join(NETWORK_CLASSES)}")
    try:
        module = cls(**record["kwargs"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: cannot build {cls.__name__} from kwargs {record['kwargs']}: {e}") from e
    load_state_dict_exact(module, record["state_dict"], where)
    return module.eval()


def load_state_dict_exact(module: nn.Module, state: dict, where: str) -> None:
    ours = module.state_dict()
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    wrong = sorted(k for k in set(ours) & set(state) if tuple(ours[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = [f"missing {missing[:8]}" if missing else "", f"unexpected {unexpected[:8]}" if unexpected else "",
                 "shape mismatch " + ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(ours[k].shape)}"
                                               for k in wrong[:8]) if wrong else ""]
        raise CheckpointError(f"{where}: tensors do not fit {type(module).__name__}: "
                              + "; ".join(p for p in parts if p))
    module.load_state_dict(state, strict=True)
