"""The SegFormer Segmentor reproduces the official ClickSEG SegFormerModel (b0-s1, b0-s2, b3-s2).

Weights come from the fixtures' make_weights (the ones the official outputs were computed with),
loaded strictly; the click maps fed in are the disks the official code drew, so this checks the
network alone.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import REFERENCE, load_manifest, reference_weights, within_tolerance  # noqa: E402

from focalclick_edge.models.segformer import SegFormerModel  # noqa: E402

# b3-s2 runs in a few seconds on 2 CPU threads, so no variant needs the slow mark.
VARIANTS = ["b0-s1", "b0-s2", "b3-s2"]


def _build(variant: str) -> SegFormerModel:
    version, pipeline = variant.split("-")
    return SegFormerModel(model_version=version, pipeline_version=pipeline)


def _assert_close(name: str, actual: np.ndarray, expected: np.ndarray) -> float:
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    err = float(np.abs(actual - expected).max())
    assert within_tolerance(actual, expected), f"{name}: out of tolerance, max abs error {err:.3e}"
    return err


@pytest.fixture(scope="module")
def official_outputs(model_io_inputs):
    """Run each variant once with the fixture weights; the parity tests share the result."""
    image_nd = torch.from_numpy(model_io_inputs["seg_in_image_nd"])
    cache: dict[str, dict[str, np.ndarray]] = {}

    def run(variant: str) -> dict[str, np.ndarray]:
        if variant not in cache:
            arrays = reference_weights(variant)
            model = _build(variant).eval()
            model.load_state_dict({k: torch.from_numpy(a) for k, a in arrays.items()}, strict=True)
            io = np.load(REFERENCE / variant / "model_io.npz")
            click_maps = torch.from_numpy(io["seg_out_click_map"]).float()
            with torch.inference_mode():
                out = model(image_nd, click_maps)
            cache[variant] = {k: v.numpy() for k, v in out.items()}
        return cache[variant]

    return run


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_keys_and_shapes_equal_official_manifest(variant: str) -> None:
    manifest = load_manifest(variant)
    expected = {key: (tuple(shape), dtype) for key, shape, dtype in manifest["state_dict"]}
    actual = {
        key: (tuple(t.shape), str(t.dtype).removeprefix("torch."))
        for key, t in _build(variant).state_dict().items()
    }
    missing = sorted(expected.keys() - actual.keys())
    extra = sorted(actual.keys() - expected.keys())
    assert not missing and not extra, f"missing {missing[:10]}, extra {extra[:10]}"
    wrong = {k: (actual[k], expected[k]) for k in expected if actual[k] != expected[k]}
    assert not wrong, f"shape/dtype mismatches: {wrong}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_order_follows_official_registration_order(variant: str) -> None:
    # Checkpoints we write should list keys like the official ones (maps_transform first).
    expected = [key for key, _, _ in load_manifest(variant)["state_dict"]]
    assert list(_build(variant).state_dict()) == expected


@pytest.mark.parametrize("variant", VARIANTS)
def test_segformer_segmentor_matches_official_outputs(variant: str, official_outputs) -> None:
    out = official_outputs(variant)
    io = np.load(REFERENCE / variant / "model_io.npz")
    _assert_close("instances", out["instances"], io["seg_out_instances"])
    _assert_close("instances_aux", out["instances_aux"], io["seg_out_instances_aux"])
    feature = out["feature"]
    assert feature.shape == tuple(io["seg_out_feature_shape"])
    head = io["seg_out_feature_head"]
    _assert_close("feature[:, :24]", feature[:, : head.shape[1]], head)
    _assert_close("feature channel mean", feature.mean(axis=(0, 2, 3)), io["seg_out_feature_channel_mean"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_segformer_aux_output_is_the_main_output(variant: str, official_outputs) -> None:
    # SegFormer has no auxiliary head; the official model returns the same logits twice.
    out = official_outputs(variant)
    np.testing.assert_array_equal(out["instances_aux"], out["instances"])


def test_stage1_decoder_input_carries_no_click_information() -> None:
    # The official net adds the click embedding to stage 1 only after handing c1 to the decoder.
    torch.manual_seed(0)
    backbone = _build("b0-s2").feature_extractor.backbone.eval()
    image = torch.randn(1, 3, 64, 64)
    side_a = torch.zeros(1, 3, 64, 64)
    side_b = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        feats_a = backbone(image, side_a)
        feats_b = backbone(image, side_b)
    torch.testing.assert_close(feats_a[0], feats_b[0], rtol=0, atol=0)
    assert not torch.allclose(feats_a[1], feats_b[1])


def test_unknown_model_version_is_rejected() -> None:
    with pytest.raises(ValueError, match="b0"):
        SegFormerModel(model_version="b7")


@pytest.mark.parametrize("variant", VARIANTS)
def test_exported_segmentor_graph_with_folded_head_matches_official_outputs(variant: str, model_io_inputs) -> None:
    """The graph we export (folded decode head, no fixed resizes) fed and post-processed the way the
    runtime does it still reproduces the official Segmentor within the parity tolerance."""
    import torch.nn.functional as F

    from focalclick_edge.export.graphs import SegmentorGraph
    from focalclick_edge.variants import get_variant

    model = _build(variant).eval()
    model.load_state_dict({k: torch.from_numpy(a) for k, a in reference_weights(variant).items()}, strict=True)
    graph = SegmentorGraph(model).eval()
    assert graph.folded_head is not None
    io = np.load(REFERENCE / variant / "model_io.npz")
    image_nd = torch.from_numpy(model_io_inputs["seg_in_image_nd"])
    click_maps = torch.from_numpy(io["seg_out_click_map"]).float()
    s = get_variant(variant).segmentor_input_size
    if s != image_nd.shape[-1]:  # the official S1 resize, done by the runtime before the graph
        image_nd = F.interpolate(image_nd, size=(s, s), mode="bilinear", align_corners=True)
        click_maps = F.interpolate(click_maps, size=(s, s), mode="bilinear", align_corners=True)
    with torch.inference_mode():
        logits, feature = graph(image_nd, click_maps)
    n = io["seg_out_instances"].shape[-1]
    instances = F.interpolate(logits, size=(n, n), mode="bilinear", align_corners=True).numpy()
    _assert_close("instances", instances, io["seg_out_instances"])
    feature = feature.numpy()
    head = io["seg_out_feature_head"]
    _assert_close("feature[:, :24]", feature[:, : head.shape[1]], head)
    _assert_close("feature channel mean", feature.mean(axis=(0, 2, 3)), io["seg_out_feature_channel_mean"])
