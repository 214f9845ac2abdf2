"""INT8 for both backends: ONNX Runtime static QDQ and OpenVINO/NNCF, calibrated on recorded clicks.

pipeline.run_int8_stage is what `export --int8` runs; onnx_int8 / openvino_int8 hold the recipes,
scope / sensitivity decide which layers stay float, agreement measures INT8 vs FP32 sessions, and
accuracy implements export --max-iou-drop.
"""
