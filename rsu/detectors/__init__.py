"""Object detectors: a camera frame in, road users on the ground out, one backend per `detector.type`.

Layout (Frigate-style plugins):

- `base`: the interface every part shares (`Detector`, `PassDetector`, `PassDetections`,
  `DetectorError`); wrappers and post-processing import only this, never a backend.
- `registry`: `detector.type` -> builder function; `factory.build_detector` looks the builder up
  and wraps the result in the motion gate (rsu.perception.motion) when `detector.motion` is on.
- `frame_detector`: what every YOLO backend does around its network runs: the detail regions
  (`detail`), rider merging (`riders`) and ground placement (`ground`).
- backends: `ultralytics_backend` (.pt through Ultralytics, set up by `ultralytics_setup`),
  `openvino_backend` and `onnx_backend` (models from `export`, sharing letterbox, decoding, NMS and
  the detail-model cache in `exported_yolo`); `classes` maps model class names to road users.

Adding a backend is one module and one registry entry:

1. a module here whose builder, with the `registry.DetectorBuilder` signature
   `(config, homography, camera_id, weights_dir) -> Detector`, is decorated with
   `@register("<type>")`; an exported YOLO model on a new runtime needs only an `InferenceBackend`
   and a call of `exported_yolo.build_exported_detector`, any other network a `PassDetector` handed
   to `FrameDetector`, so detail regions, riders and ground placement come with it;
2. its module name added to `registry.BACKEND_MODULES` (and "<type>" to the `DetectorConfig.type`
   choices in rsu_contracts.config.model, which validates the site file).
"""
