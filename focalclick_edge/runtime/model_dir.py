"""Reading an exported model directory: its card, and the graph files for a backend/precision."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..fileio import sha256_file
from .pipeline_config import PipelineConfig
from .runs import PRECISIONS, file_precision, get_run, runs_in

CARD_NAME = "model_card.json"


@dataclass
class ModelDir:
    path: Path
    card: dict[str, Any]

    @classmethod
    def open(cls, path: str | Path) -> ModelDir:
        path = Path(path)
        if not path.is_dir():
            raise UserError(f"model directory {path} does not exist; create it with `focalclick-edge export`")
        card_path = path / CARD_NAME
        if not card_path.is_file():
            raise UserError(f"{card_path} is missing; {path} is not a focalclick-edge model directory")
        try:
            card = json.loads(card_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{card_path} is corrupt ({exc.msg if hasattr(exc, 'msg') else exc}); re-export") from None
        if not isinstance(card, dict) or "variant" not in card or "files" not in card:
            raise UserError(f"{card_path} is not a focalclick-edge model card; re-export the model")
        return cls(path, card)

    @property
    def variant(self) -> str:
        return self.card["variant"]

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.card["preprocessing"]

    @property
    def pipeline(self) -> PipelineConfig:
        """The crop / threshold / merge constants the card records (older cards: the defaults)."""
        return PipelineConfig.from_card(self.card.get("pipeline"))

    def available(self) -> list[tuple[str, str]]:
        return sorted({(f["backend"], f["precision"]) for f in self.card["files"]})

    def runs(self) -> list[str]:
        """Ids of the runs (runtime/runs.py) this directory lists graph files for and this CPU can run
        (ov-bf16 only where the CPU has native bf16), in table order."""
        from .backends import run_supported

        return [r for r in runs_in(self.available()) if run_supported(get_run(r))]

    def graph_file(self, role: str, backend: str, precision: str, verify: bool = True) -> Path:
        """The file of ``role`` for backend/precision, checked against its recorded sha256."""
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision {precision!r}; choose one of: {', '.join(PRECISIONS)}")
        precision = file_precision(precision)  # bf16 runs the FP32 graph
        for f in self.card["files"]:
            if f["role"] == role and f["backend"] == backend and f["precision"] == precision:
                break
        else:
            have = ", ".join(f"{b}/{p}" for b, p in self.available()) or "nothing"
            raise UserError(
                f"{self.path} has no {backend} {precision} {role} (it has: {have}); "
                "re-export with the matching options (e.g. --int8)"
            )
        files = [(self.path / f["path"], f["sha256"])]
        if "weights_path" in f:
            files.append((self.path / f["weights_path"], f["weights_sha256"]))
        for p, digest in files:
            if not p.is_file():
                raise UserError(f"model file {p} is missing; re-export the model directory")
            if verify and sha256_file(p) != digest:
                raise UserError(f"model file {p} is corrupt (sha256 differs from {CARD_NAME}); re-export it")
        return files[0][0]
