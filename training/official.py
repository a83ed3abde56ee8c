"""Reads official StyleGAN2-ADA pickles (`network-snapshot-*.pkl`) without running code from them.

An official pickle stores each network as `torch_utils.persistence._reconstruct_persistent_obj(meta)`
with `meta = {type, version, module_src, class_name, state}`: the source code of the network's
module, which the official loader executes, plus the object's `__dict__`. Here an unpickler
resolves only the globals in ALLOWED (tensor rebuilders, plain containers, inert stand-ins for the
persistence call and `dnnlib.util.EasyDict`); anything else stops the load before it runs. Our
networks are then built from the recorded `_init_kwargs` and the tensors copied by name.
"""
import _compat_pickle
import codecs
import collections
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
import torch
from torch import nn

from training.networks import NETWORK_CLASSES
from training.records import load_state_dict_exact, plain

NETWORK_KEYS = ("G", "D", "G_ema")
# Class names that only the alias-free StyleGAN3 generator has (its pickles also say 'Generator').
STYLEGAN3_ONLY_CLASSES = ("SynthesisInput",)


class OfficialPickleError(ValueError):
    """The file is not an official StyleGAN2 PyTorch pickle we can read; the message says why."""


class UnsafePickleError(OfficialPickleError):
    """The pickle asks for a global outside the allow-list: it would run code, so nothing was run."""


@dataclass
class PersistentRecord:
    """What `_reconstruct_persistent_obj(meta)` describes, kept as data: the class is never built."""
    class_name: str
    version: int
    state: dict


class EasyDict(dict):
    """Inert stand-in for dnnlib.util.EasyDict (a dict with attribute access in the original)."""


def _reconstruct_persistent_obj(meta) -> PersistentRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise OfficialPickleError(f"persistent object meta must be a dict with type 'class', got {meta!r:.200}")
    missing = {"version", "class_name", "state"} - set(meta)
    if missing:
        raise OfficialPickleError(f"persistent object meta lacks {sorted(missing)}")
    if not isinstance(meta["state"], dict) or not isinstance(meta["class_name"], str):
        raise OfficialPickleError(f"persistent object {meta.get('class_name')!r}: malformed state")
    # meta['module_src'] is deliberately ignored: it is code.
    return PersistentRecord(meta["class_name"], meta["version"], meta["state"])


def _load_storage_from_bytes(b: bytes):
    # The real torch.storage._load_from_bytes calls torch.load without weights_only.
    if not isinstance(b, (bytes, bytearray)):
        raise OfficialPickleError("tensor storage is not bytes")
    return torch.load(io.BytesIO(b), weights_only=True, map_location="cpu")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, torch.TypedStorage):  # an untyped storage would not say its dtype
        raise OfficialPickleError(f"tensor storage has type {type(storage).__name__}, expected a typed storage")
    # Backward hooks would be callables from the file; a weight tensor never needs them.
    return torch._utils._rebuild_tensor(storage, int(storage_offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    if not isinstance(data, torch.Tensor):
        raise OfficialPickleError(f"parameter data has type {type(data).__name__}")
    return nn.Parameter(data, requires_grad=bool(requires_grad))


class _TypeName:
    """Stands for torch.Tensor / nn.Parameter inside `_rebuild_from_type_v2`. The real classes are never
    handed to the pickle: calling them from a file could allocate arbitrary amounts of memory."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise UnsafePickleError(f"refusing to call {self.name} from a pickle; tensors are read through "
                                f"torch._utils._rebuild_tensor_v2")

    def __repr__(self):
        return self.name


TENSOR_TYPE = _TypeName("torch.Tensor")
PARAMETER_TYPE = _TypeName("torch.nn.Parameter")


def _rebuild_from_type_v2(func, new_type, args, state):
    # Newer torch pickles a tensor that carries Python attributes this way; the attributes are dropped.
    if func not in (_rebuild_tensor_v2, _rebuild_parameter) or new_type not in (TENSOR_TYPE, PARAMETER_TYPE):
        raise UnsafePickleError(f"refusing tensor rebuild through {func!r} as {new_type!r}")
    t = func(*args)
    return nn.Parameter(t, requires_grad=t.requires_grad) if new_type is PARAMETER_TYPE else t


def _latin1_encode(text, encoding="latin1"):
    # Protocol-2 pickles carry bytes as _codecs.encode(str, 'latin1'); nothing else is needed.
    if not isinstance(text, str) or encoding.replace("-", "").lower() != "latin1":
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _numpy_attr(name: str) -> Callable:
    core = getattr(np, "_core", None) or np.core
    return getattr(core.multiarray, name)


# vars(), not getattr(torch, name): torch's module __getattr__ imports submodules on demand.
TORCH_DTYPES = {name: value for name, value in vars(torch).items() if isinstance(value, torch.dtype)}


ALLOWED: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_encode,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("torch", "Tensor"): TENSOR_TYPE,
    ("torch._tensor", "Tensor"): TENSOR_TYPE,
    ("torch.nn.parameter", "Parameter"): PARAMETER_TYPE,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    **{(mod, name): _numpy_attr(name) for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
       for name in ("_reconstruct", "scalar")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str):
        # Protocol-2 pickles may name Python 2 modules (__builtin__.set); map them as pickle itself does.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if module == "torch" and name in TORCH_DTYPES:
            return TORCH_DTYPES[name]
        if module.startswith("dnnlib.tflib"):
            raise OfficialPickleError(f"{self.source}: a TensorFlow StyleGAN2 pickle ({module}.{name}); only "
                                      f"PyTorch pickles of StyleGAN2-ADA or the StyleGAN3 repository are supported")
        raise UnsafePickleError(f"{self.source}: refusing to load global {module}.{name}: it is not on the "
                                f"allow-list of data constructors, and loading it could run code")

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: persistent id {pid!r:.100} is not part of the official format")


def read_official_pickle(path_or_file: str | os.PathLike | BinaryIO) -> tuple[Any, str]:
    """Unpickles with the restricted unpickler; returns (data, the source's name for messages)."""
    if isinstance(path_or_file, (str, os.PathLike)):
        path = Path(path_or_file)
        if not path.is_file():
            raise FileNotFoundError(f"official pickle not found: {path}")
        blob, source = path.read_bytes(), str(path)
    else:
        blob, source = path_or_file.read(), str(getattr(path_or_file, "name", "<file object>"))
    if blob[:2] == b"PK":
        raise OfficialPickleError(f"{source}: a zip file (a torch.save checkpoint?), not an official .pkl; "
                                  f"LeakGuard checkpoints are read by training.checkpoint.load_networks")
    if blob[:1] != b"\x80":
        raise OfficialPickleError(f"{source}: not a pickle (protocol 2 or later); expected an official "
                                  f"StyleGAN2-ADA network-snapshot .pkl")
    try:
        return _RestrictedUnpickler(io.BytesIO(blob), source).load(), source
    except OfficialPickleError as e:
        if str(e).startswith(f"{source}: "):
            raise
        raise type(e)(f"{source}: {e}") from e  # raised by a stand-in, which does not know the file
    except Exception as e:  # truncated or corrupt data surfaces as many exception types
        raise OfficialPickleError(f"{source}: cannot read the pickle ({type(e).__name__}: {e})") from e


MAX_DEPTH = 32  # official networks nest 4 deep; a memo trick can make a record its own submodule


def _section(record: PersistentRecord, key: str, where: str, prefix: str) -> dict:
    value = record.state.get(key) or {}
    if not isinstance(value, dict):
        raise OfficialPickleError(f"{where}: {prefix or 'the network'} has {key} of type {type(value).__name__}, "
                                  f"expected a dict")
    return value


def walk_records(record: PersistentRecord, where: str, prefix: str = "", depth: int = 0):
    """Yields (dotted prefix, record) for a record and its submodule records, parents first."""
    if depth > MAX_DEPTH:
        raise OfficialPickleError(f"{where}: submodules nest deeper than {MAX_DEPTH} at {prefix!r} (a cycle?)")
    yield prefix, record
    for name, child in _section(record, "_modules", where, prefix).items():
        if child is None:
            continue
        if not isinstance(child, PersistentRecord):
            raise OfficialPickleError(f"{where}: submodule {prefix}{name} is a {type(child).__name__}, "
                                      f"not a StyleGAN2 persistent module")
        yield from walk_records(child, where, f"{prefix}{name}.", depth + 1)


def record_state_dict(record: PersistentRecord, where: str) -> dict[str, torch.Tensor]:
    """Flattens a record tree into state_dict names: `_parameters`, persistent `_buffers`, `_modules`."""
    out = {}
    for prefix, rec in walk_records(record, where):
        skip = set(rec.state.get("_non_persistent_buffers_set") or ())
        for kind in ("_parameters", "_buffers"):
            for name, t in _section(rec, kind, where, prefix).items():
                if t is None or (kind == "_buffers" and name in skip):
                    continue
                if not isinstance(t, torch.Tensor):
                    raise OfficialPickleError(f"{where}: {prefix}{name} is a {type(t).__name__}, not a tensor")
                out[prefix + name] = t.detach()
    return out


def build_from_record(record: Any, where: str) -> nn.Module:
    if not isinstance(record, PersistentRecord):
        raise OfficialPickleError(f"{where}: expected a StyleGAN2 network, got {type(record).__name__}")
    cls = NETWORK_CLASSES.get(record.class_name)
    if cls is None:
        raise OfficialPickleError(f"{where}: class {record.class_name!r} is not a supported network "
                                  f"({', '.join(NETWORK_CLASSES)})")
    stylegan3 = {rec.class_name for _, rec in walk_records(record, where)} & set(STYLEGAN3_ONLY_CLASSES)
    if stylegan3:
        raise OfficialPickleError(f"{where}: an alias-free StyleGAN3 generator (it has {sorted(stylegan3)}); only "
                                  f"StyleGAN2 networks are supported (StyleGAN2-ADA pickles, or the StyleGAN3 "
                                  f"repository trained with --cfg=stylegan2)")
    args, kwargs = record.state.get("_init_args") or (), record.state.get("_init_kwargs") or {}
    if not isinstance(args, (tuple, list)) or not isinstance(kwargs, dict):
        raise OfficialPickleError(f"{where}: _init_args/_init_kwargs are {type(args).__name__}/"
                                  f"{type(kwargs).__name__}, expected a tuple and a dict")
    args, kwargs = plain(list(args), f"{where} _init_args"), plain(dict(kwargs), f"{where} _init_kwargs")
    try:
        module = cls(*args, **kwargs)
    except (TypeError, ValueError) as e:
        raise OfficialPickleError(f"{where}: cannot build {cls.__name__}(*{args}, **{kwargs}): {e}") from e
    load_state_dict_exact(module, record_state_dict(record, where), where)
    return module.eval()


def load_official_pkl(path_or_file: str | os.PathLike | BinaryIO) -> dict:
    """{'G', 'D', 'G_ema'} (those in the file) as LeakGuard modules in eval mode, plus
    'training_set_kwargs' as a plain dict when the pickle has it."""
    data, source = read_official_pickle(path_or_file)
    if not isinstance(data, dict):
        raise OfficialPickleError(f"{source}: expected a dict of networks, got {type(data).__name__}")
    present = [k for k in NETWORK_KEYS if k in data]
    if not present:
        raise OfficialPickleError(f"{source}: holds none of {', '.join(NETWORK_KEYS)} (keys: {sorted(map(str, data))})")
    out: dict[str, Any] = {k: build_from_record(data[k], f"{source}: {k}") for k in present}
    if data.get("training_set_kwargs") is not None:
        out["training_set_kwargs"] = plain(dict(data["training_set_kwargs"]), f"{source}: training_set_kwargs")
    return out


def load_official_networks(path: str | os.PathLike) -> dict:
    """An official pickle in the shape training.checkpoint.load_networks returns: networks plus
    'extra' holding the source path and the pickle's training_set_kwargs."""
    nets = load_official_pkl(path)
    nets["extra"] = {"source": str(path), "training_set_kwargs": nets.pop("training_set_kwargs", None)}
    return nets
