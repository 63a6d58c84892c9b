"""Make Ultralytics safe to run on an offline roadside box.

Call `prepare_ultralytics(threads)` before the first `import ultralytics`. Left alone, Ultralytics
probes DNS at import, may pip-install packages, sends usage events when settings `sync` is on and
picks its own thread count: its `select_device()`, run when a model's predictor is first built (the
first predict() or track(), and again whenever a setup argument such as the tracker changes), sets
torch to `cpu_count - 1` threads. `pin_torch_threads(threads)` after such a call puts the count back.

On these machines torchvision's C++ ops do not load beside the CPU torch, so `import torchvision`
(which Ultralytics does before every `predict()`) fails with "operator torchvision::nms does not
exist"; a pure-torch NMS is put in its place.

Drawing results stays offline only on OpenCV's path: `Results.plot(pil=True)` downloads a font.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

import torch

log = logging.getLogger(__name__)

# Environment names read by ultralytics 8.4 (ultralytics/utils/__init__.py: env_bool("YOLO_OFFLINE"),
# env_bool("YOLO_AUTOINSTALL", True)); both are read once, at import.
OFFLINE_ENV = "YOLO_OFFLINE"
AUTOINSTALL_ENV = "YOLO_AUTOINSTALL"

_lock = threading.Lock()
_prepared = False
# Holds our torchvision op definitions; they are dropped when the Library object is collected.
_torchvision_ops_library: torch.library.Library | None = None


def prepare_ultralytics(threads: int) -> None:
    """Offline mode, no auto-install, no telemetry, `threads` torch threads, working NMS.

    Idempotent; later calls only change the thread count. Torch's thread count is process-wide.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    # Ultralytics forces OMP_NUM_THREADS=1 when unset, which would also throttle other OpenMP users.
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    ensure_offline_ultralytics()
    torch.set_num_threads(threads)


def pin_torch_threads(threads: int) -> bool:
    """Torch back to `threads` threads if Ultralytics (or anything) changed it; True if it had to.

    Cheap enough to call after every predict(): torch.get_num_threads() is a plain read.
    """
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if torch.get_num_threads() == threads:
        return False
    torch.set_num_threads(threads)
    return True


def ensure_offline_ultralytics() -> None:
    """Everything prepare_ultralytics does except the thread count; safe to call any number of times."""
    global _prepared
    with _lock:
        if _prepared:
            return
        if "ultralytics" in sys.modules:
            log.warning(
                "ultralytics was imported before prepare_ultralytics(); "
                "its import-time online check may already have run"
            )
        os.environ[OFFLINE_ENV] = "1"
        os.environ[AUTOINSTALL_ENV] = "False"
        install_nms_fallback_if_needed()
        _disable_settings_sync()
        _prepared = True


def _disable_settings_sync() -> None:
    from ultralytics.utils import SETTINGS  # first import of ultralytics: after the environment is set

    # Persisted in Ultralytics' settings file, as `yolo settings sync=False` would; written only if it changes.
    if SETTINGS.get("sync", True):
        SETTINGS.update(sync=False)


def nms_pure_torch(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS with torchvision's semantics: indices of kept boxes, highest score first.

    boxes are (N, 4) x1 y1 x2 y2; a box is dropped when its IoU with a kept box exceeds the threshold.
    One vectorised step per kept box, which is cheap for the tens of boxes a frame holds.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    boxes = boxes.float()
    order = torch.argsort(scores, descending=True)
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    keep: list[torch.Tensor] = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        inter_w = (torch.minimum(x2[rest], x2[best]) - torch.maximum(x1[rest], x1[best])).clamp(min=0)
        inter_h = (torch.minimum(y2[rest], y2[best]) - torch.maximum(y1[rest], y1[best])).clamp(min=0)
        inter = inter_w * inter_h
        iou = inter / (areas[best] + areas[rest] - inter)
        # `~(iou > t)` rather than `iou <= t`: a NaN IoU (two empty boxes) keeps the box, as torchvision does.
        order = rest[~(iou > iou_threshold)]
    return torch.stack(keep)


def install_nms_fallback_if_needed() -> bool:
    """Make `torchvision.ops.nms` work; True if the pure-torch fallback had to be installed."""
    failure = _torchvision_nms_failure()
    if failure is None:
        return False
    log.info("torchvision nms unavailable (%s); installing a pure-torch fallback", failure)
    _define_missing_torchvision_ops()
    import torchvision  # now imports: the ops its meta registrations expect exist
    import torchvision.ops.boxes

    # torchvision.ops.nms refuses to run without the C++ extension, so replace it where it is looked up:
    # Ultralytics calls torchvision.ops.nms, batched_nms calls the module-level name in ops.boxes.
    torchvision.ops.nms = nms_pure_torch
    torchvision.ops.boxes.nms = nms_pure_torch
    still_failing = _torchvision_nms_failure()
    if still_failing is not None:
        raise RuntimeError(f"could not install a working NMS for torchvision: {still_failing}")
    return True


def _torchvision_nms_failure() -> str | None:
    """None if torchvision imports and its nms gives the right answer, else what went wrong."""
    try:
        import torchvision

        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
        kept = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
    except ModuleNotFoundError:
        # Ultralytics then uses its own NMS; nothing to repair.
        return None
    except Exception as exc:  # any import or op failure means predict() would fail the same way
        return f"{type(exc).__name__}: {exc}"
    return None if kept == [0, 2] else f"wrong result {kept}"


def _define_missing_torchvision_ops() -> None:
    """Define torchvision::nms (with a CPU kernel) and torchvision::qnms, which torchvision's import registers."""
    global _torchvision_ops_library
    if _torchvision_ops_library is not None:
        return
    library = torch.library.Library("torchvision", "FRAGMENT")
    schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
    if not _op_exists("nms"):
        library.define("nms" + schema)
        library.impl("nms", nms_pure_torch, "CPU")
    if not _op_exists("qnms"):
        library.define("qnms" + schema)  # quantised boxes: never used by the detector, only declared
    _torchvision_ops_library = library


def _op_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True
