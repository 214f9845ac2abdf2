"""The registry of the six published FocalClick variants.

Every other module asks this registry what a variant is (family, sizes, radii, the official
class and constructor arguments) instead of parsing variant ids itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import UserError

__all__ = ["Variant", "VARIANTS", "get_variant", "variant_ids", "variant_from_config"]


@dataclass(frozen=True)
class Variant:
    id: str
    family: str  # "hrnet" | "segformer"
    backbone: str  # "hrnet18s" | "hrnet32" | "mit_b0" | "mit_b3"
    pipeline: str  # "s1" | "s2"
    official_config: str
    official_class: str
    model_params: dict[str, Any] = field(hash=False, compare=False)
    feature_channels: int = 0
    # Measured on the official code (reference manifests); GMAC = GFLOPs / 2.
    params_segmentor_m: float = 0.0
    params_refiner_m: float = 0.0
    gmac_segmentor: float = 0.0
    gmac_refiner: float = 0.0
    # The paper's CPU timings (4-core 2.4 GHz i5), milliseconds.
    paper_cpu_ms_segmentor: float = 0.0
    paper_cpu_ms_refiner: float = 0.0

    @property
    def segmentor_input_size(self) -> int:
        """Size the backbone sees (the paper's S1 128 / S2 256)."""
        return 128 if self.pipeline == "s1" else 256

    @property
    def net_input_size(self) -> int:
        """Size of the Target Crop tensor the predictor builds; 256 for all (infer_size=256)."""
        return 256

    @property
    def refiner_input_size(self) -> int:
        return 256

    @property
    def feature_size(self) -> int:
        return self.segmentor_input_size // 4

    @property
    def segmentor_disk_radius(self) -> int:
        if self.pipeline == "s2":
            return 5
        return 2 if self.family == "hrnet" else 3

    @property
    def refiner_disk_radius(self) -> int:
        return 5

    def runtime_sizes(self) -> dict[str, int]:
        """The constants the per-click runtime needs (the numeric part of a model card's preprocessing)."""
        return {
            "net_input_size": self.net_input_size,
            "segmentor_input_size": self.segmentor_input_size,
            # The exported Segmentor graph's input size (see export/graphs.py SegmentorGraph).
            "segmentor_feed_size": self.segmentor_input_size,
            "refiner_input_size": self.refiner_input_size,
            "segmentor_disk_radius": self.segmentor_disk_radius,
            "refiner_disk_radius": self.refiner_disk_radius,
            "feature_size": self.feature_size,
            "feature_channels": self.feature_channels,
        }

    @property
    def paper_budget_ms(self) -> float:
        return self.paper_cpu_ms_segmentor + self.paper_cpu_ms_refiner


_COMMON = {
    "with_prev_mask": True,
    "with_aux_output": True,
    "use_leaky_relu": True,
    "use_rgb_conv": False,
    "use_disks": True,
    "norm_radius": 5,
}


def _hrnet(vid: str, cfg: str, width: int, ocr: int, small: bool, pipe: str, **kw: Any) -> Variant:
    params = {"pipeline_version": pipe, "width": width, "ocr_width": ocr, "small": small, **_COMMON}
    return Variant(
        id=vid, family="hrnet", backbone=f"hrnet{width}{'s' if small else ''}", pipeline=pipe,
        official_config=cfg, official_class="isegm.model.is_hrnet_model.HRNetModel",
        model_params=params, feature_channels=2 * ocr, **kw,
    )


def _segformer(vid: str, cfg: str, version: str, pipe: str, **kw: Any) -> Variant:
    params = {"pipeline_version": pipe, "model_version": version, "binary_prev_mask": False, **_COMMON}
    return Variant(
        id=vid, family="segformer", backbone=f"mit_{version}", pipeline=pipe,
        official_config=cfg, official_class="isegm.model.is_segformer_model.SegFormerModel",
        model_params=params, feature_channels=256 if version == "b0" else 512, **kw,
    )


VARIANTS: dict[str, Variant] = {
    v.id: v
    for v in [
        _hrnet("hrnet18s-s1", "hrnet18s_S1_cclvs.py", 18, 48, True, "s1",
               params_segmentor_m=4.220, params_refiner_m=0.011, gmac_segmentor=0.905,
               gmac_refiner=0.127, paper_cpu_ms_segmentor=80, paper_cpu_ms_refiner=50),
        _hrnet("hrnet18s-s2", "hrnet18s_S2_cclvs.py", 18, 48, True, "s2",
               params_segmentor_m=4.220, params_refiner_m=0.011, gmac_segmentor=3.615,
               gmac_refiner=0.137, paper_cpu_ms_segmentor=213, paper_cpu_ms_refiner=51),
        _hrnet("hrnet32-s2", "hrnet32_S2_cclvs.py", 32, 128, False, "s2",
               params_segmentor_m=30.951, params_refiner_m=0.016, gmac_segmentor=16.815,
               gmac_refiner=0.158, paper_cpu_ms_segmentor=650, paper_cpu_ms_refiner=51),
        _segformer("b0-s1", "segformerB0_S1_cclvs.py", "b0", "s1",
                   params_segmentor_m=3.724, params_refiner_m=0.016, gmac_segmentor=0.430,
                   gmac_refiner=0.132, paper_cpu_ms_segmentor=41, paper_cpu_ms_refiner=59),
        _segformer("b0-s2", "segformerB0_S2_cclvs.py", "b0", "s2",
                   params_segmentor_m=3.724, params_refiner_m=0.016, gmac_segmentor=1.765,
                   gmac_refiner=0.158, paper_cpu_ms_segmentor=140, paper_cpu_ms_refiner=60),
        _segformer("b3-s2", "segformerB3_S2_cclvs.py", "b3", "s2",
                   params_segmentor_m=45.663, params_refiner_m=0.025, gmac_segmentor=12.705,
                   gmac_refiner=0.191, paper_cpu_ms_segmentor=634, paper_cpu_ms_refiner=72),
    ]
}


def variant_ids() -> list[str]:
    return list(VARIANTS)


def get_variant(variant_id: str) -> Variant:
    try:
        return VARIANTS[variant_id]
    except KeyError:
        raise UserError(
            f"unknown variant {variant_id!r}; choose one of: {', '.join(VARIANTS)}"
        ) from None


def variant_from_config(config: dict[str, Any]) -> Variant | None:
    """Find the variant an official checkpoint `config` describes, or None."""
    cls = str(config.get("class", ""))
    params = {k: (v.get("value") if isinstance(v, dict) else v) for k, v in config.get("params", {}).items()}
    for v in VARIANTS.values():
        if cls.rsplit(".", 1)[-1] != v.official_class.rsplit(".", 1)[-1]:
            continue
        if v.family == "hrnet":
            keys = ("pipeline_version", "width", "ocr_width", "small")
        else:
            keys = ("pipeline_version", "model_version")
        if all(params.get(k) == v.model_params[k] for k in keys):
            return v
    return None

