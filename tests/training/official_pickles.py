"""Writes pickles in the official StyleGAN2-ADA format without the official code or our networks.

Stand-in modules `torch_utils.persistence` and `dnnlib.util` are registered in sys.modules only
while pickling, so the file refers to the same globals an official snapshot does.
"""
import collections
import contextlib
import io
import pickle
import sys
import types

import torch

BUFFER_NAMES = ("resample_filter", "noise_const", "w_avg")
MODULE_SRC = "import torch\nclass Generator(torch.nn.Module):\n    pass\n"


@contextlib.contextmanager
def official_modules():
    """Yields (persistence, util) stand-ins importable as torch_utils.persistence and dnnlib.util."""
    persistence = types.ModuleType("torch_utils.persistence")
    util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):
        raise AssertionError("the stand-in is only for pickling")

    _reconstruct_persistent_obj.__module__ = persistence.__name__
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = util.__name__, "EasyDict"
    util.EasyDict = EasyDict
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules.update({"torch_utils": types.ModuleType("torch_utils"), "torch_utils.persistence": persistence,
                        "dnnlib": types.ModuleType("dnnlib"), "dnnlib.util": util})
    try:
        yield persistence, util
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


class Persistent:
    """Pickles as torch_utils.persistence._reconstruct_persistent_obj(meta), like an official network."""

    def __init__(self, persistence, class_name, state, module_src=MODULE_SRC):
        self.meta = dict(type="class", version=6, module_src=module_src, class_name=class_name, state=state)
        self.fn = persistence._reconstruct_persistent_obj

    def __reduce__(self):
        return self.fn, (self.meta,)


def module_tree(persistence, util, class_name, flat_state, init_kwargs, module_src=MODULE_SRC, tensor=None):
    """Builds nested Persistent objects from an official flat state dict {'a.b.weight': array}."""
    tensor = tensor or (lambda name, a: torch.nn.Parameter(torch.as_tensor(a), requires_grad=False)
                        if not name.endswith(BUFFER_NAMES) else torch.as_tensor(a))

    def node(prefix):
        params, buffers, children = collections.OrderedDict(), collections.OrderedDict(), collections.OrderedDict()
        for name, value in flat_state.items():
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if "." in rest:
                children.setdefault(rest.split(".")[0], None)
            elif rest.endswith(BUFFER_NAMES):
                buffers[rest] = tensor(name, value)
            else:
                params[rest] = tensor(name, value)
        state = {"training": False, "_parameters": params, "_buffers": buffers,
                 "_non_persistent_buffers_set": set(), "_forward_hooks": collections.OrderedDict(),
                 "_modules": collections.OrderedDict((c, node(f"{prefix}{c}.")) for c in children),
                 "_init_args": (), "_init_kwargs": util.EasyDict()}
        return Persistent(persistence, "SubModule", state, module_src)

    top = node("")
    top.meta["class_name"] = class_name
    top.meta["state"]["_init_kwargs"] = _easy(util, init_kwargs)
    return top


def storage_tensor(zip_format: bool):
    """A `tensor=` for module_tree whose storages are `torch.save`d in the zip format (torch >= 1.6
    writes it) or the legacy one (what official snapshots from torch 1.7-1.9 hold), chosen here
    rather than left to whatever the installed torch pickles by default."""

    def make(name, array):
        t = torch.as_tensor(array).contiguous()

        class Storage:
            def __reduce__(self):
                buf = io.BytesIO()
                typed = torch.TypedStorage(wrap_storage=t.untyped_storage(), dtype=t.dtype, _internal=True)
                torch.save(typed, buf, _use_new_zipfile_serialization=zip_format)
                return torch.storage._load_from_bytes, (buf.getvalue(),)

        class Tensor:
            def __reduce__(self):
                return torch._utils._rebuild_tensor_v2, (Storage(), 0, tuple(t.shape), t.stride(), False,
                                                         collections.OrderedDict())

        class Parameter:
            def __reduce__(self):
                return torch._utils._rebuild_parameter, (Tensor(), False, collections.OrderedDict())

        return Tensor() if name.endswith(BUFFER_NAMES) else Parameter()

    return make


def _easy(util, value):
    if isinstance(value, dict):
        return util.EasyDict({k: _easy(util, v) for k, v in value.items()})
    return value


def official_snapshot(meta, arrays, protocol=4, module_src=MODULE_SRC, tensor=None, extra=None) -> bytes:
    """pickle.dumps of {G, D, G_ema, augment_pipe, training_set_kwargs} as an official snapshot has them."""
    with official_modules() as (persistence, util):
        g = {k[2:]: arrays[k] for k in arrays.files if k.startswith("G/")}
        d = {k[2:]: arrays[k] for k in arrays.files if k.startswith("D/")}
        data = dict(
            G=module_tree(persistence, util, "Generator", g, meta["G_kwargs"], module_src, tensor),
            D=module_tree(persistence, util, "Discriminator", d, meta["D_kwargs"], module_src, tensor),
            G_ema=module_tree(persistence, util, "Generator", g, meta["G_kwargs"], module_src, tensor),
            augment_pipe=Persistent(persistence, "AugmentPipe", {"_parameters": {}, "_buffers": {
                "p": torch.zeros([])}, "_modules": {}}),
            training_set_kwargs=util.EasyDict(class_name="training.data.dataset.ImageFolderDataset",
                                              path="ffhq.zip", resolution=32, use_labels=False, xflip=True),
        )
        data.update(extra or {})
        return pickle.dumps(data, protocol=protocol)
