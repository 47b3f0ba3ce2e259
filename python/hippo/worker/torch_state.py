"""Saving and loading a PyTorch training state: model, optimizer and random generators.

A stage that starts from load_state() continues exactly where the stage that called
save_state() stopped, so on the CPU (same thread count) a run trained as several stages gives
the same bits as one straight run. Saved: the model's and the optimizer's state_dict, torch's
CPU generator (and the CUDA ones when CUDA is in use), Python's `random` and NumPy's global
generator, and `extra` (anything picklable: a data position, a step counter).
"""

import random
import zlib


class _Checksummed:
    """A file that keeps the size and CRC-32 of what was written through it."""

    def __init__(self, file):
        self.file, self.size, self.crc = file, 0, 0

    def write(self, data):
        view = memoryview(data)
        self.crc = zlib.crc32(view, self.crc)
        self.size += view.nbytes
        return self.file.write(data)

    def flush(self):
        self.file.flush()


def save_state(path, model, optimizer=None, extra=None):
    """Writes the training state to `path` (use as ``stage.checkpoint(step, lambda p:
    save_state(p, model, optimizer))``). Returns the file's (size in bytes, "crc32:..."), which
    stage.checkpoint takes instead of reading the file again to checksum it."""
    import torch

    state = {
        "format": 1,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "rng_torch": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
        "rng_python": random.getstate(),
        "rng_numpy": _numpy_state(),
        "extra": extra,
    }
    with open(path, "wb") as file:
        checksummed = _Checksummed(file)
        torch.save(state, checksummed)
    return checksummed.size, f"crc32:{checksummed.crc:08x}"


def load_state(path, model, optimizer=None):
    """Restores a state written by save_state into `model` (and `optimizer`) and the random
    generators; returns its `extra`."""
    import torch

    state = torch.load(path, map_location="cpu")
    if not isinstance(state, dict) or state.get("format") != 1:
        raise ValueError(f"{path}: not a state written by hippo.worker.save_state")
    model.load_state_dict(state["model"])
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng_torch"])
    if state["rng_cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    random.setstate(state["rng_python"])
    if state["rng_numpy"] is not None:
        import numpy

        numpy.random.set_state(state["rng_numpy"])
    return state["extra"]


def _numpy_state():
    try:
        import numpy
    except ImportError:
        return None
    return numpy.random.get_state()
