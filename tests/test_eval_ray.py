"""`eval --engine ray`: the same per-sample results as the local engine, and a killed actor loses nothing.
Both run on a local Ray that the test starts (2 CPUs), with the click-following blob model of
test_eval_cli and the 6 fixture samples (GrabCut, Berkeley, COCO_MVal), 3 clicks each."""
from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("onnx")

from conftest import FIXTURES  # noqa: E402
from test_eval_cli import _add_openvino_fp32, _blob_graphs, _eval, _new_card, _write_onnx  # noqa: E402

from focalclick_edge.evaluation.datasets import load_dataset  # noqa: E402
from focalclick_edge.evaluation.ray_engine import local_ray_options  # noqa: E402
from focalclick_edge.evaluation.runner import EvalSettings, evaluate, ray_engine  # noqa: E402

DATASETS = [("GrabCut", FIXTURES / "data" / "GrabCut"), ("Berkeley", FIXTURES / "data" / "Berkeley"),
            ("COCO_MVal", FIXTURES / "data" / "COCO_MVal")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blob_model_ray")
    card = _new_card()
    _write_onnx(folder, _blob_graphs(), "fp32", card)
    _add_openvino_fp32(folder, card)
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder


@pytest.fixture(scope="module")
def local_ray():
    ray.init(**local_ray_options(2))
    yield ray
    ray.shutdown()


def _dataset_args() -> list[str]:
    return [a for name, path in DATASETS for a in ("--dataset", f"{name}={path}")]


def test_ray_engine_gives_the_local_engines_per_sample_results_in_sample_order(model_dir, local_ray, tmp_path):
    reports = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"{engine}.json"
        rc = _eval("--model", model_dir, *_dataset_args(), "--runs", "ort-fp32,ov-fp32", "--max-clicks", 3,
                   "--engine", engine, "--workers", 2, "--json", out)
        assert rc == 0
        reports[engine] = json.loads(out.read_text())
    local, on_ray = reports["local"], reports["ray"]
    assert on_ray["samples"] == local["samples"]
    for key in local["runs"]:  # same sample order too: the per-sample lists are merged by index
        assert list(on_ray["samples"][key]) == list(local["samples"][key])
        assert on_ray["runs"][key]["miou"] == local["runs"][key]["miou"]
    s = on_ray["settings"]
    assert s["engine"] == "ray" and s["workers"] == 2
    assert s["thread_settings"]["start_method"] == "ray actor" and s["thread_settings"]["session_threads"] == 1


def test_a_killed_ray_actor_loses_no_sample(model_dir, local_ray):
    datasets = [(name, load_dataset(name, path)) for name, path in DATASETS]
    settings = EvalSettings(model_dir=str(model_dir), runs=("ort-fp32",), max_clicks=3, workers=2)
    expected = evaluate(datasets, settings, progress=False)

    tasks = [(d, i) for d, (_, ds) in enumerate(datasets) for i in range(len(ds))]
    engine = ray_engine(settings, datasets, workers=2, threads=1)
    killed = []

    def kill_mid_run(task, actor):
        if len(killed) == 0 and task == tasks[2]:  # two samples are already running: kill one of the actors
            pid = ray.get(actor.pid.remote())
            ray.kill(actor, no_restart=False)
            killed.append((actor, pid))

    try:
        outs = list(engine.run(tasks, on_submit=kill_mid_run))
        actor, old_pid = killed[0]
        new_pid = ray.get(actor.pid.remote())
    finally:
        engine.close()
    assert new_pid != old_pid  # the actor was really killed and came back
    assert sorted((o[0], o[1]) for o in outs) == tasks  # every sample, each once
    by_task = {(o[0], o[1]): o[3]["ort-fp32"] for o in outs}
    for d, (name, _) in enumerate(datasets):
        for i, want in enumerate(expected.results[(name, "ort-fp32")]):
            got = by_task[(d, i)]
            assert (got.ious, got.clicks) == (want.ious, want.clicks)


def test_an_unreachable_ray_address_is_a_one_line_error(model_dir, capsys):
    rc = _eval("--model", model_dir, "--dataset", f"GrabCut={DATASETS[0][1]}", "--runs", "ort-fp32",
               "--engine", "ray", "--ray-address", "127.0.0.1:9")
    assert rc == 2
    err = capsys.readouterr().err
    assert "--ray-address 127.0.0.1:9: nothing answers there" in err and "Traceback" not in err
