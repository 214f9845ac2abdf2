"""Writing a nuclio function directory that deploys a model into CVAT as an interactor.

The layout follows CVAT's own interactors (serverless/pytorch/saic-vul/hrnet/nuclio): ``function.yaml``
with the annotations CVAT's lambda manager reads (name, type: interactor, spec, framework,
min_pos_points, min_neg_points, help_message) and ``main.py`` with ``init_context``/``handler``.
nuclio copies the directory to /opt/nuclio in the image, so the model travels inside it (``model/``).
"""
from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fileio import atomic_directory
from ..runtime.model_dir import CARD_NAME, ModelDir

PYTHON = "3.10"  # a nuclio python runtime CVAT's nuclio (1.13) has; the project needs >= 3.10
MAIN_PY = '''"""CVAT interactor: FocalClick {variant} ({run}), written by `focalclick-edge cvat-function`."""
import os
from pathlib import Path

from focalclick_edge.adapters import cvat_nuclio

MODEL_DIR = Path(os.environ.get("FOCALCLICK_EDGE_MODEL", Path(__file__).resolve().parent / "model"))
RUN = {run!r}
THREADS = {threads!r}


def init_context(context):
    context.logger.info("loading FocalClick {variant} ({run}) from %s" % MODEL_DIR)
    context.user_data.service = cvat_nuclio.load_service(MODEL_DIR, RUN, THREADS)


def handler(context, event):
    status, body = cvat_nuclio.handle(context.user_data.service, event.body)
    return context.Response(body=body, headers={{}}, content_type="application/json", status_code=status)
'''


def default_package() -> str:
    try:
        return f"focalclick-edge=={importlib.metadata.version('focalclick-edge')}"
    except importlib.metadata.PackageNotFoundError:
        return "focalclick-edge"


def _run_files(model: ModelDir, backend: str, precision: str) -> list[str]:
    """The card-relative files the run needs (both graphs, weights files too), checked against the card."""
    from ..runtime.runs import refiner_precision_for

    wanted = {("segmentor", precision), ("refiner", refiner_precision_for(backend, precision))}
    for role, p in wanted:
        model.graph_file(role, backend, p)  # refuses a missing or corrupt file with its fix
    files = []
    for f in model.card["files"]:
        if f["backend"] == backend and (f["role"], f["precision"]) in wanted:
            files += [f["path"]] + ([f["weights_path"]] if "weights_path" in f else [])
    return files


def function_config(name: str, display: str, description: str, package_install: str,
                    threads: int | None) -> dict[str, Any]:
    """The function.yaml content (CVAT's interactor annotations, an image with focalclick-edge and the model)."""
    return {
        "metadata": {
            "name": name,
            "namespace": "cvat",
            "annotations": {
                "name": display,
                "version": 2,  # interactors of version 2 answer with a mask
                "type": "interactor",
                "spec": "",
                "framework": "focalclick-edge",
                "min_pos_points": 1,
                "min_neg_points": 0,
                "help_message": "FocalClick: click inside the object (positive points) and on wrong regions "
                                "(negative points, shift+click); each click refines the mask.",
            },
        },
        "spec": {
            "description": description,
            "runtime": f"python:{PYTHON}",
            "handler": "main:handler",
            "eventTimeout": "30s",
            "build": {
                "image": f"cvat.{name}",
                "baseImage": f"python:{PYTHON}-slim",
                "directives": {
                    # postCopy: the function directory (main.py, model/, a copied wheel) is in /opt/nuclio by then.
                    "postCopy": [
                        {"kind": "RUN", "value": f"pip install --no-cache-dir {package_install}"},
                        {"kind": "WORKDIR", "value": "/opt/nuclio"},
                    ],
                },
            },
            "env": [{"name": "OMP_NUM_THREADS", "value": str(threads or 2)}],
            "triggers": {
                "myHttpTrigger": {
                    "maxWorkers": 1,  # one Session per function: calls are serialised anyway
                    "kind": "http",
                    "workerAvailabilityTimeoutMilliseconds": 10000,
                    "attributes": {"maxRequestBodySize": 33554432},  # 32 MB, as CVAT's interactors
                },
            },
            "platform": {"attributes": {"restartPolicy": {"name": "always", "maximumRetryCount": 3},
                                        "mountMode": "volume"}},
            "resources": {"limits": {"cpu": threads or 2}},
        },
    }


def write_function_dir(model_dir: str | Path, run: str, out: str | Path, package: str | None = None,
                       threads: int | None = None, name: str | None = None) -> Path:
    """Write ``out`` (replacing it) as a nuclio function directory; returns its path."""
    import yaml

    from ..runtime.runs import get_run

    spec = get_run(run)
    backend, precision = spec.backend, spec.precision
    model = ModelDir.open(model_dir)
    files = _run_files(model, backend, precision)
    package = package or default_package()
    wheel = Path(package)
    if package.endswith(".whl"):
        if not wheel.is_file():
            raise UserError(f"--package {package} does not exist; build it with `pip wheel . -w dist`")
        install = f"/opt/nuclio/{wheel.name}"
    else:
        install = json.dumps(package)  # quoted for the shell: specifiers may hold < or >
    name = name or f"focalclick-edge-{model.variant}-{run}".lower()
    display = f"FocalClick {model.variant} ({run})"
    description = (f"FocalClick {model.variant} click-based interactive segmentation on CPU "
                   f"({backend} {precision}, focalclick-edge)")
    config = function_config(name, display, description, install, threads)
    with atomic_directory(out) as tmp:
        (tmp / "model").mkdir()
        card = dict(model.card)
        # Only the run's graphs travel; the card lists just those, so the copy is a valid model directory.
        card["files"] = [f for f in model.card["files"] if f["path"] in files]
        (tmp / "model" / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n")
        for rel in files:
            (tmp / "model" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(model.path / rel, tmp / "model" / rel)
        if package.endswith(".whl"):
            shutil.copy2(wheel, tmp / wheel.name)
        (tmp / "main.py").write_text(MAIN_PY.format(variant=model.variant, run=run, threads=threads))
        (tmp / "function.yaml").write_text(yaml.safe_dump(config, sort_keys=False, width=120))
    return Path(out)
