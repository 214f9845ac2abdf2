"""`focalclick-edge eval`: the INT8 gate, worker-count independence, shared initial masks, the report files
and one-line errors. Runs use 2 fixture samples per dataset and at most 3 clicks.

The model directories here are small hand-built graphs with the exported interface (same inputs, outputs
and card fields), not a torch export: an export alone takes 20-30 s, and what is tested here is the
evaluation around the Session, not the network. One is a click-following "blob" model (a conv over the
image, the previous mask and dilated click disks), listed for ONNX Runtime and, converted, for OpenVINO;
the other pairs an "everything is object" FP32 run with an "everything is background" INT8 run."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from conftest import FIXTURES  # noqa: E402

from focalclick_edge.cli import main as cli_main  # noqa: E402
from focalclick_edge.errors import UserError  # noqa: E402
from focalclick_edge.evaluation.datasets import load_dataset  # noqa: E402
from focalclick_edge.evaluation.initial_masks import InitialMaskCache  # noqa: E402
from focalclick_edge.evaluation.metrics import iou  # noqa: E402
from focalclick_edge.evaluation.report import check_gate_runs, max_drop_failures  # noqa: E402
from focalclick_edge.fileio import sha256_file  # noqa: E402
from focalclick_edge.runtime import session as session_mod  # noqa: E402

GRABCUT = FIXTURES / "data" / "GrabCut"
BERKELEY = FIXTURES / "data" / "Berkeley"
N, FEAT, FEAT_C = 256, 32, 4  # Target / Focus Crop size, feature map size and channels
PREPROCESSING = {"net_input_size": N, "refiner_input_size": N, "segmentor_disk_radius": 3,
                 "refiner_disk_radius": 5, "feature_size": FEAT}


# ------------------------------------------------------------------------------------------ model dirs
def _vi(name: str, shape: list[int]):
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def _init(name: str, value) -> onnx.TensorProto:
    return onnx.numpy_helper.from_array(np.asarray(value, np.float32), name)


def _dilated_clicks(src: str, out: str, cells: int) -> list:
    """Click disks grown to blobs cheaply: max over 8x8 cells, a max filter over cells, nearest upsampling."""
    h = onnx.helper
    return [h.make_node("MaxPool", [src], [f"{out}_s"], kernel_shape=[8, 8], strides=[8, 8]),
            h.make_node("MaxPool", [f"{out}_s"], [f"{out}_d"], kernel_shape=[cells, cells], pads=[cells // 2] * 4),
            h.make_node("Resize", [f"{out}_d", "", "scales"], [out], mode="nearest")]


def _io(role: str) -> tuple[list, list]:
    if role == "segmentor":
        return ([_vi("image_nd", [1, 4, N, N]), _vi("click_maps", [1, 2, N, N])],
                [_vi("coarse_logits", [1, 1, N, N]), _vi("feature", [1, FEAT_C, FEAT, FEAT])])
    return ([_vi("image_focus", [1, 3, N, N]), _vi("click_maps_focus", [1, 2, N, N]),
             _vi("cropped_feature", [1, FEAT_C, FEAT, FEAT]), _vi("cropped_logits", [1, 1, N, N])],
            [_vi("refined_logits", [1, 1, N, N])])


def _blob_graphs(seed: int = 0) -> dict[str, onnx.GraphProto]:
    """Object where the clicks and the previous mask say so, nudged by a random conv over the image."""
    h = onnx.helper
    rng = np.random.default_rng(seed)
    w = np.zeros((1, 6, 3, 3), np.float32)
    w[0, :3] = rng.normal(0, 0.3, (3, 3, 3))
    w[0, 3:, 1, 1] = (2.0, 8.0, -8.0)  # previous mask, positive, negative clicks
    seg_nodes = _dilated_clicks("click_maps", "big", 5) + [
        h.make_node("Concat", ["image_nd", "big"], ["x"], axis=1),
        h.make_node("Conv", ["x", "w", "b"], ["coarse_logits"], pads=[1] * 4),
        h.make_node("Conv", ["x", "wf"], ["f"]),
        h.make_node("AveragePool", ["f"], ["feature"], kernel_shape=[8, 8], strides=[8, 8])]
    seg = h.make_graph(seg_nodes, "blob_segmentor", *_io("segmentor"),
                       [_init("w", w), _init("b", [-3.0]), _init("wf", rng.normal(0, 1, (FEAT_C, 6, 1, 1))),
                        _init("scales", [1, 1, 8, 8])])
    wr = np.zeros((1, 6, 3, 3), np.float32)
    wr[0, :3] = rng.normal(0, 0.3, (3, 3, 3))
    wr[0, 3:, 1, 1] = (4.0, -4.0, 1.0)  # positive, negative clicks, coarse logits
    ref_nodes = _dilated_clicks("click_maps_focus", "big", 3) + [
        h.make_node("Concat", ["image_focus", "big", "cropped_logits"], ["y"], axis=1),
        h.make_node("Conv", ["y", "wr", "br"], ["refined_logits"], pads=[1] * 4)]
    ref = h.make_graph(ref_nodes, "blob_refiner", *_io("refiner"),
                       [_init("wr", wr), _init("br", [0.0]), _init("scales", [1, 1, 8, 8])])
    return {"segmentor": seg, "refiner": ref}


def _constant_graphs(logit: float) -> dict[str, onnx.GraphProto]:
    """A segmentor that says ``logit`` everywhere and a refiner that passes the coarse logits through."""
    h = onnx.helper
    seg = h.make_graph(
        [h.make_node("ReduceMean", ["image_nd"], ["m"], axes=[1], keepdims=1),
         h.make_node("Mul", ["m", "zero"], ["m0"]),
         h.make_node("Add", ["m0", "c"], ["coarse_logits"]),
         h.make_node("AveragePool", ["coarse_logits"], ["f1"], kernel_shape=[8, 8], strides=[8, 8]),
         h.make_node("Tile", ["f1", "reps"], ["feature"])],
        "constant_segmentor", *_io("segmentor"),
        [_init("zero", 0.0), _init("c", logit), onnx.numpy_helper.from_array(np.array([1, FEAT_C, 1, 1]), "reps")])
    ref = h.make_graph([h.make_node("Identity", ["cropped_logits"], ["refined_logits"])], "passthrough_refiner",
                       *_io("refiner"))
    return {"segmentor": seg, "refiner": ref}


def _write_onnx(folder: Path, graphs: dict[str, onnx.GraphProto], precision: str, card: dict) -> None:
    for role, graph in graphs.items():
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        name = f"{role}.{precision}.onnx"
        onnx.save(model, str(folder / name))
        card["files"].append({"role": role, "backend": "onnxruntime", "precision": precision, "path": name,
                              "sha256": sha256_file(folder / name)})


def _add_openvino_fp32(folder: Path, card: dict) -> None:
    import openvino as ov

    for role in ("segmentor", "refiner"):
        xml = folder / f"{role}.fp32.xml"
        ov.save_model(ov.Core().read_model(str(folder / f"{role}.fp32.onnx")), str(xml), compress_to_fp16=False)
        card["files"].append({"role": role, "backend": "openvino", "precision": "fp32", "path": xml.name,
                              "sha256": sha256_file(xml), "weights_path": xml.with_suffix(".bin").name,
                              "weights_sha256": sha256_file(xml.with_suffix(".bin"))})


def _new_card() -> dict:
    return {"variant": "b0-s1", "preprocessing": dict(PREPROCESSING), "files": []}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The blob model as ort-fp32 and ov-fp32."""
    folder = tmp_path_factory.mktemp("blob_model")
    card = _new_card()
    _write_onnx(folder, _blob_graphs(), "fp32", card)
    _add_openvino_fp32(folder, card)
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


def _eval(*args: str | Path) -> int:
    return cli_main(["eval", "--no-progress", *map(str, args)])


# ---------------------------------------------------------------------------------------- worker count
@pytest.fixture(scope="module")
def one_worker_report(model_dir, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("eval_w1")
    rc = _eval("--model", model_dir, "--dataset", f"GrabCut={GRABCUT}", "--dataset", f"Berkeley={BERKELEY}",
               "--runs", "ort-fp32,ov-fp32", "--max-clicks", 3, "--workers", 1,
               "--json", out / "r.json", "--plot", out / "r.png")
    assert rc == 0
    return json.loads((out / "r.json").read_text()), out / "r.png"


def test_two_workers_give_the_same_per_sample_iou_curves_as_one(model_dir, one_worker_report, tmp_path):
    rc = _eval("--model", model_dir, "--dataset", f"GrabCut={GRABCUT}", "--dataset", f"Berkeley={BERKELEY}",
               "--runs", "ort-fp32,ov-fp32", "--max-clicks", 3, "--workers", 2, "--json", tmp_path / "r.json")
    assert rc == 0
    two = json.loads((tmp_path / "r.json").read_text())
    one = one_worker_report[0]
    assert two["settings"]["workers"] == 2 and one["settings"]["workers"] == 1
    assert two["samples"] == one["samples"]  # IoUs and clicks, bit for bit, merged in sample order
    for key in one["runs"]:
        for field in ("noc85", "noc90", "noc95", "nof90", "miou"):
            assert two["runs"][key][field] == one["runs"][key][field]


def test_json_report_has_run_summaries_sample_curves_and_settings(one_worker_report):
    report, _ = one_worker_report
    # Two datasets: runs are keyed "<dataset>/<run>".
    assert list(report["runs"]) == ["GrabCut/ort-fp32", "GrabCut/ov-fp32", "Berkeley/ort-fp32", "Berkeley/ov-fp32"]
    for key, e in report["runs"].items():
        assert e["dataset"] == key.split("/")[0] and e["run"] == key.split("/")[1]
        for field in ("noc85", "noc90", "noc95"):
            assert 1.0 <= e[field] <= 3.0
        for field in ("nof85", "nof90", "nof95"):
            assert isinstance(e[field], int) and 0 <= e[field] <= 2
        assert len(e["miou"]) == 3 and all(0.0 <= v <= 1.0 for v in e["miou"])
        assert e["latency_ms_p50"] > 0
    curves = report["samples"]["GrabCut/ort-fp32"]
    assert sorted(curves) == ["227092", "teddy"]
    for curve in curves.values():
        assert 1 <= len(curve["ious"]) <= 3 and len(curve["clicks"]) == len(curve["ious"])
    s = report["settings"]
    assert s["mode"] == "scratch" and s["max_clicks"] == 3 and s["runs"] == ["ort-fp32", "ov-fp32"]
    assert set(s["datasets"]) == {"GrabCut", "Berkeley"} and s["stop_iou"] == 0.95
    assert "cpu_count" in report["hardware"] and "onnxruntime" in report["versions"]


def test_plot_is_written_as_a_png(one_worker_report):
    _, png = one_worker_report
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    assert not list(png.parent.glob(".*"))  # the temporary file was renamed, not left behind


# ----------------------------------------------------------------------------------------- init masks
def test_every_run_starts_from_the_same_cached_initial_mask(model_dir, tmp_path, monkeypatch):
    seen: list[tuple[str, str, bytes]] = []
    original = session_mod.Session.set_mask

    def recording_set_mask(self, mask):
        seen.append((self.backend, self.precision, np.packbits(np.asarray(mask, bool)).tobytes()))
        return original(self, mask)

    monkeypatch.setattr(session_mod.Session, "set_mask", recording_set_mask)
    cache_dir = tmp_path / "cache"
    args = ["--model", model_dir, "--dataset", f"GrabCut={GRABCUT}", "--runs", "ort-fp32,ov-fp32",
            "--max-clicks", 1, "--from-init-mask", "--init-mask-seed", 3, "--cache-dir", cache_dir,
            "--json", tmp_path / "r.json"]
    assert _eval(*args) == 0
    ds = load_dataset("GrabCut", GRABCUT)
    cache = InitialMaskCache(cache_dir)
    cached = [cache.get("GrabCut", name, 3) for name in ds.names]
    assert all(m is not None for m in cached)
    # One worker: sample by sample, every run in turn; each got exactly the cached mask.
    assert [(b, p) for b, p, _ in seen] == [("onnxruntime", "fp32"), ("openvino", "fp32")] * len(ds)
    for i, mask in enumerate(cached):
        assert seen[2 * i][2] == seen[2 * i + 1][2] == np.packbits(mask).tobytes()

    # A mask already in the cache is used as it is, not made again.
    sample = ds[0]
    custom = cv2.erode((sample.gt == 1).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    cache.put("GrabCut", sample.name, 3, custom)
    seen.clear()
    assert _eval(*args) == 0
    assert seen[0][2] == seen[1][2] == np.packbits(custom).tobytes()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["settings"]["mode"] == "init_mask" and report["settings"]["init_mask_seed"] == 3
    assert report["initial_masks"]["GrabCut"][sample.name]["iou"] == pytest.approx(iou(sample.gt, custom))
    assert list(report["runs"]) == ["ort-fp32", "ov-fp32"]  # one dataset: keyed by run id alone


# ----------------------------------------------------------------------------------------------- gate
def _summary(dataset: str, run: str, noc90: float) -> dict:
    return {"dataset": dataset, "run": run, "noc90": noc90}


def test_gate_flags_only_int8_runs_that_lose_more_than_max_drop_clicks():
    summaries = {
        "ort-fp32": _summary("G", "ort-fp32", 6.1), "ort-int8": _summary("G", "ort-int8", 6.2),
        "ov-fp32": _summary("G", "ov-fp32", 6.0), "ov-fp16": _summary("G", "ov-fp16", 9.0),
        "ov-int8": _summary("G", "ov-int8", 6.5),
    }
    assert max_drop_failures(summaries, 0.5) == []
    # 6.2 - 6.1 is 0.10000000000000053 in floats, yet a drop of exactly max_drop passes; ov-fp16 is no INT8 run.
    failures = max_drop_failures(summaries, 0.1)
    assert len(failures) == 1 and failures[0].startswith("ov-int8") and "ov-fp32" in failures[0]
    assert len(max_drop_failures(summaries, 0.05)) == 2
    # Several datasets: each INT8 run is compared with the FP32 run of its own dataset.
    multi = {"A/ort-fp32": _summary("A", "ort-fp32", 3.0), "A/ort-int8": _summary("A", "ort-int8", 3.0),
             "B/ort-fp32": _summary("B", "ort-fp32", 2.0), "B/ort-int8": _summary("B", "ort-int8", 3.0)}
    assert [f.split(":")[0] for f in max_drop_failures(multi, 0.5)] == ["B/ort-int8"]


def test_gate_needs_the_fp32_run_of_the_same_backend():
    assert check_gate_runs(["ort-fp32", "ort-int8"]) == [("ort-int8", "ort-fp32")]
    with pytest.raises(UserError, match="ov-fp32 is not in --runs"):
        check_gate_runs(["ort-fp32", "ov-int8"])
    with pytest.raises(UserError, match="needs an INT8 run"):
        check_gate_runs(["ort-fp32", "ov-fp32"])


@pytest.fixture()
def gate_setup(tmp_path) -> tuple[Path, Path]:
    """A model dir whose ort-fp32 says "all object" and whose ort-int8 says "all background", and a dataset
    whose objects fill the whole image: NoC90 is 1 for FP32 and 3 (never) for INT8 with 3 clicks."""
    model = tmp_path / "model"
    model.mkdir()
    card = _new_card()
    _write_onnx(model, _constant_graphs(10.0), "fp32", card)
    _write_onnx(model, _constant_graphs(-10.0), "int8", card)
    (model / "model_card.json").write_text(json.dumps(card))
    data = tmp_path / "whole"
    (data / "images").mkdir(parents=True)
    (data / "masks").mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        cv2.imwrite(str(data / "images" / f"{name}.png"), rng.integers(0, 255, (40, 56, 3), dtype=np.uint8))
        cv2.imwrite(str(data / "masks" / f"{name}.png"), np.full((40, 56), 255, np.uint8))
    return model, data


def test_max_drop_exits_1_naming_the_int8_run_that_needs_more_clicks(gate_setup, tmp_path, capsys):
    model, data = gate_setup
    base = ["--model", model, "--dataset", f"whole={data}", "--max-clicks", 3, "--json", tmp_path / "r.json"]
    assert _eval(*base, "--max-drop", "0.5") == 1
    err = capsys.readouterr().err
    assert "max-noc-drop FAILED: ort-int8: NoC90 3.00 vs ort-fp32 1.00" in err
    runs = json.loads((tmp_path / "r.json").read_text())["runs"]
    assert (runs["ort-fp32"]["noc90"], runs["ort-int8"]["noc90"]) == (1.0, 3.0)
    # A drop of exactly max_drop passes.
    assert _eval(*base, "--max-drop", "2") == 0
    assert "FAILED" not in capsys.readouterr().err


def test_max_drop_without_the_matching_fp32_run_is_a_one_line_error(gate_setup, capsys):
    model, data = gate_setup
    rc = _eval("--model", model, "--dataset", f"whole={data}", "--runs", "ort-int8", "--max-noc-drop", "0.1")
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "ort-fp32 is not in --runs" in err


# --------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("spec", ["GrabCut", "=tests/fixtures/data/GrabCut", "GrabCut="])
def test_bad_dataset_spec_is_a_one_line_error(spec, tmp_path, capsys):
    rc = _eval("--model", tmp_path / "no_model", "--dataset", spec)
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "must be NAME=PATH" in err


def test_missing_dataset_folder_is_a_one_line_error(gate_setup, tmp_path, capsys):
    model, _ = gate_setup
    rc = _eval("--model", model, "--dataset", f"GrabCut={tmp_path / 'nowhere'}")
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--dataset GrabCut" in err and "does not exist" in err


def test_plot_without_matplotlib_says_pip_install_matplotlib(gate_setup, tmp_path, capsys, monkeypatch):
    model, data = gate_setup
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` raise ImportError
    rc = _eval("--model", model, "--dataset", f"whole={data}", "--plot", tmp_path / "p.png")
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install matplotlib" in err
    assert not (tmp_path / "p.png").exists()


def test_unknown_or_missing_run_is_a_one_line_error(gate_setup, capsys):
    model, data = gate_setup
    assert _eval("--model", model, "--dataset", f"whole={data}", "--runs", "ov-fp16") == 2
    assert "has no ov-fp16 model" in capsys.readouterr().err
    assert _eval("--model", model, "--dataset", f"whole={data}", "--runs", "trt-fp32") == 2
    assert "unknown run" in capsys.readouterr().err


def test_one_and_two_workers_give_identical_per_sample_ious_with_an_exported_model(b0s1_fp32_model_dir, tmp_path):
    reports = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.json"
        rc = _eval("--model", b0s1_fp32_model_dir, "--dataset", f"GrabCut={GRABCUT}", "--dataset",
                   f"Berkeley={BERKELEY}", "--runs", "ort-fp32,ov-fp32", "--max-clicks", 4, "--stop-iou", 1.01,
                   "--workers", workers, "--json", out)
        assert rc == 0
        reports[workers] = json.loads(out.read_text())
    one, two = reports[1], reports[2]
    assert one["samples"] == two["samples"]
    assert all(len(s["ious"]) == 4 for run in one["samples"].values() for s in run.values())
    # The thread settings each engine ran with are stated: in-process defaults vs 1 thread per worker.
    t1, t2 = one["settings"]["thread_settings"], two["settings"]["thread_settings"]
    assert t1["start_method"] == "in-process" and t2["start_method"] == "spawn"
    assert t2["session_threads"] == max(1, (os.cpu_count() or 1) // 2) and t2["opencv"] == t2["session_threads"]
    assert {"onnxruntime", "openvino", "blas", "env"} <= set(t1)
