"""The offline Ultralytics environment and the pure-torch NMS that stands in for torchvision's."""

from __future__ import annotations

import os

import pytest
import torch

from rsu.detectors.ultralytics_setup import install_nms_fallback_if_needed, nms_pure_torch, prepare_ultralytics


def reference_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Textbook greedy NMS, one pair at a time."""

    def iou(a: torch.Tensor, b: torch.Tensor) -> float:
        width = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
        height = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
        inter = width * height
        union = float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])) - inter
        return inter / union

    kept: list[int] = []
    for index in sorted(range(len(scores)), key=lambda i: -float(scores[i])):
        if all(iou(boxes[index], boxes[k]) <= threshold for k in kept):
            kept.append(index)
    return kept


@pytest.mark.parametrize("seed", range(5))
def test_pure_torch_nms_matches_greedy_nms(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(60, 2, generator=generator) * 200
    sizes = torch.rand(60, 2, generator=generator) * 60 + 5
    boxes = torch.cat((corners, corners + sizes), dim=1)
    scores = torch.rand(60, generator=generator)
    for threshold in (0.3, 0.5, 0.7):
        assert nms_pure_torch(boxes, scores, threshold).tolist() == reference_nms(boxes, scores, threshold)


def test_pure_torch_nms_of_nothing_is_empty() -> None:
    kept = nms_pure_torch(torch.zeros((0, 4)), torch.zeros(0), 0.5)
    assert kept.dtype == torch.int64
    assert kept.numel() == 0


def test_empty_boxes_are_kept_as_torchvision_keeps_them() -> None:
    boxes = torch.tensor([[5.0, 5.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0]])
    assert nms_pure_torch(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0, 1]


def test_torchvision_nms_works_after_the_fallback_check() -> None:
    install_nms_fallback_if_needed()
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]
    # Different classes never suppress each other.
    assert torchvision.ops.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1, 2]


def test_prepare_sets_the_offline_environment_threads_and_settings() -> None:
    previous_threads = torch.get_num_threads()
    try:
        prepare_ultralytics(threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous_threads)
    assert os.environ["YOLO_OFFLINE"] == "1"
    assert os.environ["YOLO_AUTOINSTALL"] == "False"
    from ultralytics.utils import SETTINGS, is_online

    assert SETTINGS["sync"] is False
    assert is_online() is False


def test_a_thread_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        prepare_ultralytics(threads=0)
