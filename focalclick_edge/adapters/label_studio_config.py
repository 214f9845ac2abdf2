"""Reading what the ML backend needs from a Label Studio labeling config (XML).

A click-to-mask project pairs an Image with BrushLabels (where the mask goes) and KeyPointLabels with
``smart="true"`` (the clicks); the keypoints' label picks the brush label of the mask.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from ..errors import UserError

EXAMPLE_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <BrushLabels name="tag" toName="image">
    <Label value="Object" background="#FF0000"/>
  </BrushLabels>
  <KeyPointLabels name="tag2" toName="image" smart="true">
    <Label value="Object" smart="true" background="#000000" showInline="true"/>
  </KeyPointLabels>
</View>"""


@dataclass(frozen=True)
class LabelConfig:
    brush_from: str  # BrushLabels name: from_name of the answer
    to_name: str  # the Image's name
    image_key: str  # task data key of the image URL ($image -> "image")
    brush_labels: tuple[str, ...]
    keypoint_from: tuple[str, ...]  # KeyPointLabels names whose points are clicks

    def brush_label_for(self, keypoint_label: str | None) -> str:
        """The keypoint's label when it is also a brush label, else the first brush label."""
        return keypoint_label if keypoint_label in self.brush_labels else self.brush_labels[0]


def parse_label_config(xml: object) -> LabelConfig:
    if not isinstance(xml, str) or not xml.strip():
        raise UserError("label_config is missing; Label Studio sends the project's labeling config with each call")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise UserError(f"label_config is not valid XML ({exc})") from None
    images = {el.get("name"): el.get("value", "") for el in root.iter() if el.tag == "Image"}
    brushes = [el for el in root.iter() if el.tag == "BrushLabels"]
    if not brushes:
        raise UserError("label_config has no <BrushLabels>; add one (toName = the Image) for the masks")
    brush = next((b for b in brushes if b.get("toName") in images), None)
    if brush is None:
        raise UserError("label_config's <BrushLabels> does not point (toName) at an <Image>")
    to_name = brush.get("toName", "")
    labels = tuple(lab.get("value", "") for lab in brush.iter("Label") if lab.get("value"))
    if not labels:
        raise UserError("label_config's <BrushLabels> has no <Label value=...>")
    keypoints = tuple(el.get("name", "") for el in root.iter()
                      if el.tag == "KeyPointLabels" and el.get("toName") == to_name)
    if not keypoints:
        raise UserError(f'label_config has no <KeyPointLabels toName="{to_name}" smart="true"> for the clicks')
    value = images[to_name]
    if not value.startswith("$") or len(value) < 2:
        raise UserError(f'label_config\'s <Image name="{to_name}"> needs value="$key" (the task data key)')
    return LabelConfig(brush_from=brush.get("name", ""), to_name=to_name, image_key=value[1:],
                       brush_labels=labels, keypoint_from=keypoints)
