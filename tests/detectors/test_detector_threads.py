"""detector.threads is what every detector type runs with, also after Ultralytics' own reset.

Ultralytics sets torch to `cpu_count - 1` threads (its NUM_THREADS) whenever it builds a predictor;
the thread count asked for here always differs from that, so these tests fail if the reset wins.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rsu.detectors.export import ExportResult
from rsu.detectors.factory import build_detector
from rsu.samples import JAMCAM_SITE
from rsu_contracts.config import load_site_config
from rsu_contracts.config.model import CameraConfig, DetectorConfig


def camera_with(**detector: object) -> CameraConfig:
    camera = load_site_config(JAMCAM_SITE).cameras[0]
    return camera.model_copy(update={"detector": DetectorConfig.model_validate(detector)})


def threads_unlike_ultralytics() -> int:
    from rsu.detectors.ultralytics_setup import ensure_offline_ultralytics

    ensure_offline_ultralytics()
    from ultralytics.utils import NUM_THREADS

    return NUM_THREADS + 1


@pytest.fixture
def torch_threads_restored() -> object:
    before = torch.get_num_threads()
    yield None
    torch.set_num_threads(before)


@pytest.mark.footage
@pytest.mark.usefixtures("torch_threads_restored")
def test_the_ultralytics_detector_keeps_the_configured_threads_after_its_first_predict(weights: Path) -> None:
    threads = threads_unlike_ultralytics()
    detector = build_detector(camera_with(type="ultralytics", weights=str(weights), imgsz=64, threads=threads))
    assert torch.get_num_threads() == threads  # the warm-up predict built the predictor and reset torch
    detector.detect(np.zeros((288, 352, 3), dtype=np.uint8), 0.0)
    assert torch.get_num_threads() == threads
    torch.set_num_threads(1)  # anything else resetting it in between: the next frame puts it back
    detector.detect(np.zeros((288, 352, 3), dtype=np.uint8), 0.04)
    assert torch.get_num_threads() == threads


@pytest.mark.footage
@pytest.mark.usefixtures("torch_threads_restored")
def test_the_ultralytics_track_loop_of_the_bench_keeps_its_threads(weights: Path) -> None:
    from rsu.detectors.ultralytics_setup import pin_torch_threads, prepare_ultralytics

    threads = threads_unlike_ultralytics()
    prepare_ultralytics(threads)
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    model.track(np.zeros((64, 64, 3), dtype=np.uint8), persist=True, imgsz=64, tracker="bytetrack.yaml", verbose=False)
    assert torch.get_num_threads() != threads  # Ultralytics' reset, which the bench must undo
    assert pin_torch_threads(threads) and torch.get_num_threads() == threads
    assert not pin_torch_threads(threads)  # already right: nothing to do


@pytest.mark.footage
def test_exported_detectors_run_with_the_configured_threads(
    tiny_onnx: ExportResult, tiny_openvino: ExportResult
) -> None:
    openvino = build_detector(camera_with(type="openvino", weights=str(tiny_openvino.model_path), threads=1))
    backend = openvino.backend
    assert backend._compiled.get_property("INFERENCE_NUM_THREADS") == 1
    onnx = build_detector(camera_with(type="onnx", weights=str(tiny_onnx.model_path), threads=1))
    options = onnx.backend._session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
