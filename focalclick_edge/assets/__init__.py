"""Data shipped inside the package: a few COCO-MVal images for calibration and demos."""
from __future__ import annotations

from pathlib import Path

ASSETS = Path(__file__).parent
CALIBRATION_DIR = ASSETS / "calibration"
CHECKPOINT_DIR = ASSETS / "checkpoints"
MODELS_DIR = ASSETS / "models"  # exported model directories (tools/build_shipped_model.py writes them)


def sample_image_paths() -> tuple[Path, Path]:
    """(image, mask) of the first built-in sample."""
    img = sorted((CALIBRATION_DIR / "img").glob("*.jpg"))[0]
    return img, CALIBRATION_DIR / "gt" / f"{img.stem}.png"


def default_checkpoint(variant_id: str) -> Path | None:
    path = CHECKPOINT_DIR / f"{variant_id}.pth"
    return path if path.exists() else None


def shipped_model_dir(variant_id: str) -> Path | None:
    """The exported model directory shipped for the variant (what `serve` and `segment` use by default)."""
    path = MODELS_DIR / variant_id
    return path if (path / "model_card.json").is_file() else None
