"""What a run's float arithmetic depends on besides its config: the torch build, the device, the CPU thread
count and the fused-ops mode. Two runs of one config agree bit for bit only where these agree too (on the
CPU the thread count splits float sums: 1 thread and 2 threads part at the first tick), so snapshots record
them and a resume under others says so."""
import torch

from cuda_ops.ops_mode import mode as ops_mode


def numerics(device: torch.device) -> dict:
    """The numerics of this process on `device`, as plain values a snapshot can hold."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"torch": str(torch.__version__), "device": name, "threads": torch.get_num_threads(),
            "ops": ops_mode() or "auto"}


def differences(saved: dict | None, now: dict) -> list[str]:
    """'key saved -> now' for each numerics key that differs (none when the snapshot predates the record)."""
    if not saved:
        return []
    return [f"{key} {saved.get(key)} -> {now[key]}" for key in now if saved.get(key) != now[key]]
