"""Reading official ClickSEG / FocalClick checkpoints safely.

The official trainer writes ``torch.save({'state_dict': ..., 'config': {'class': ..., 'params': ...}})``.
We only ever unpickle with ``weights_only=True``: tensors, plain containers and scalars load; any
pickled callable (the way a malicious .pth runs code) is refused before it can execute.
"""
from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..variants import Variant, get_variant, variant_from_config

_SHOW = 4


class CheckpointError(UserError):
    """A checkpoint that cannot be used, with a one-line reason and fix."""


def _few(items: list[str]) -> str:
    more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return ", ".join(items[:_SHOW]) + more


def read_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Return (state_dict, config or None) from a checkpoint file, without running pickled code."""
    import torch

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; pass the path of a FocalClick .pth file")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; pass the .pth file inside it")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            raise CheckpointError(
                f"checkpoint {path} is truncated or corrupt (its zip directory is unreadable); "
                "download or copy it again"
            ) from None
        if not any(n.endswith("data.pkl") for n in names):
            raise CheckpointError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl inside)")
    elif not head.startswith(b"\x80"):
        hint = " (it looks like an ONNX model)" if path.suffix == ".onnx" else ""
        raise CheckpointError(
            f"{path} is not a PyTorch checkpoint{hint}; pass the official .pth file (a zip archive)"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only" in str(exc).lower() or "unsupported global" in str(exc).lower():
            raise CheckpointError(
                f"refused to load {path}: it contains pickled objects other than tensors and plain data, "
                "which could run code when unpickled; official FocalClick checkpoints never do. "
                f"Use a trusted file ({first[:160]})"
            ) from None
        raise CheckpointError(f"checkpoint {path} is corrupt: {first[:200]}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt ({first[:160]}); download or copy it again"
        ) from None
    if isinstance(obj, list):
        raise CheckpointError(
            f"{path} holds {len(obj)} models (an official multi-model file); save one of them on its own"
        )
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a FocalClick checkpoint dict")
    if "state_dict" in obj:
        state = obj["state_dict"]
        config = obj.get("config")
    else:  # a bare state dict (e.g. torch.save(model.state_dict()))
        state, config = obj, None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} has no tensor state_dict; it is not a FocalClick checkpoint")
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    return dict(state), (dict(config) if isinstance(config, Mapping) else None)


def _config_summary(config: Mapping[str, Any]) -> str:
    params = {k: (v.get("value") if isinstance(v, Mapping) else v) for k, v in config.get("params", {}).items()}
    keys = ("pipeline_version", "model_version", "width", "ocr_width", "small")
    parts = [f"{k}={params[k]}" for k in keys if k in params]
    return f"{str(config.get('class', '?')).rsplit('.', 1)[-1]}({', '.join(parts)})"


def resolve_variant(path: str | Path, config: dict[str, Any] | None, variant: str | Variant | None) -> Variant:
    wanted = get_variant(variant) if isinstance(variant, str) else variant
    found = variant_from_config(config) if config else None
    if config and found is None:
        raise CheckpointError(
            f"{path} describes {_config_summary(config)}, which is none of the six published FocalClick "
            "variants (run `focalclick-edge variants`)"
        )
    if wanted is not None and found is not None and wanted.id != found.id:
        raise CheckpointError(
            f"{path} is a {found.id} checkpoint, not {wanted.id}; pass --variant {found.id} or omit --variant"
        )
    if wanted is None and found is None:
        raise CheckpointError(
            f"{path} has no official 'config' entry to tell its variant; pass --variant "
            "(S1 and S2 models share weight shapes, so it cannot be guessed)"
        )
    return wanted or found  # type: ignore[return-value]


def load_checkpoint(path: str | Path, variant: str | Variant | None = None):
    """Load an official-format FocalClick checkpoint into our PyTorch model (eval mode).

    The variant is taken from the stored config when ``variant`` is None. Unlike the official loader
    (``strict=False``, mismatches silently ignored), every key and shape must match."""
    from .build import build_model

    state, config = read_checkpoint(path)
    v = resolve_variant(path, config, variant)
    model = build_model(v)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys ({_few(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
        raise CheckpointError(f"{path} does not fit {v.id}: " + "; ".join(parts))
    bad = [
        f"{k}: file {tuple(state[k].shape)} vs {v.id} {tuple(t.shape)}"
        for k, t in expected.items()
        if tuple(state[k].shape) != tuple(t.shape)
    ]
    if bad:
        raise CheckpointError(f"{path} does not fit {v.id}: {len(bad)} shape mismatches ({_few(bad)})")
    model.load_state_dict(state, strict=True)
    model.requires_grad_(False)
    model.checkpoint_config = config
    return model.eval()
