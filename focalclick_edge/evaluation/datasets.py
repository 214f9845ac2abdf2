"""Lazy loaders for the standard interactive-segmentation benchmark layouts.

Every sample is ``Sample(name, image, gt)``: ``image`` uint8 HxWx3 RGB, ``gt`` int8 HxW with 1 object,
0 background, -1 ignore. Masks are binarised as the official ClickSEG loaders do:

| layout | folders | gt rule |
|---|---|---|
| ``grabcut`` | ``data_GT/`` + ``boundary_GT/`` | channel 0: 128 -> -1 ignore, > 128 -> 1, else 0 |
| ``berkeley`` | ``images/`` + ``masks/`` | same as GrabCut (the official class subclasses it) |
| ``davis`` | ``img/`` + ``gt/`` | max over the colour channels > 0 -> 1 (no ignore) |
| ``coco_mval`` | ``img/`` + ``gt/`` | channel 0 > 128 -> 1 (ClickSEG's ``COCOMValDataset``) |
| ``sbd`` | ``img/`` + ``inst/*.mat`` | one sample per instance id of ``GTinst.Segmentation`` |
| ``generic`` | ``images/`` + ``masks/`` | max over the colour channels > 127 -> 1 |

Notes on the official rules: DAVIS really uses "> 0" (any non-black pixel, after ``np.max`` over the
three channels of ``cv2.imread``), not a normalised 0.5 cut. The GrabCut rule leaves raw values 1..127
at their value, so a raw 1 would become object there; here 1..127 are background (the released masks
only contain 0/128/255, so both agree). SBD needs scipy (optional) and, like the official
``SBDEvaluationDataset``, lists every instance of every image (names ``<image>#<id>``), reading
``val.txt`` when present.

Images and masks are decoded with ``cv2.IMREAD_COLOR`` (the flag the official loaders use): grey
images become 3-channel, alpha is dropped, 16-bit is reduced to 8 bits (high byte) and the JPEG EXIF
orientation is applied. Decoding goes through ``np.fromfile`` + ``cv2.imdecode`` so non-ASCII paths
work everywhere.

Images without a mask and masks without object pixels are skipped and listed in ``skipped``; the
masks (not the images) are read once when the dataset is opened for that check.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..runtime.images import decode_image_file, read_image

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm")
# When several masks share a stem, the lossless formats win.
MASK_EXT_PREFERENCE = (".png", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm", ".webp", ".jpg", ".jpeg")


@dataclass(frozen=True, eq=False)  # arrays have no truth value, so compare samples by identity
class Sample:
    name: str
    image: np.ndarray
    gt: np.ndarray


def _read_color(path: Path, what: str) -> np.ndarray:
    """BGR uint8 HxWx3 exactly as the official ``cv2.imread(path)`` gives it, or a one-line ValueError."""
    return decode_image_file(path, what, cv2.IMREAD_COLOR)


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 HxWx3 RGB (grey -> RGB, alpha dropped, 16-bit -> 8-bit)."""
    return read_image(path)


def _gt_grabcut(raw: np.ndarray) -> np.ndarray:
    c0 = raw[:, :, 0]
    gt = (c0 > 128).astype(np.int8)
    gt[c0 == 128] = -1
    return gt


def _gt_davis(raw: np.ndarray) -> np.ndarray:
    return (raw.max(axis=2) > 0).astype(np.int8)


def _gt_coco_mval(raw: np.ndarray) -> np.ndarray:
    return (raw[:, :, 0] > 128).astype(np.int8)


def _gt_generic(raw: np.ndarray) -> np.ndarray:
    return (raw.max(axis=2) > 127).astype(np.int8)


@dataclass(frozen=True)
class Layout:
    name: str
    images_dir: str
    masks_dir: str
    gt_from_mask: Callable[[np.ndarray], np.ndarray] | None  # None: SBD (.mat instances)


LAYOUTS: dict[str, Layout] = {
    "grabcut": Layout("grabcut", "data_GT", "boundary_GT", _gt_grabcut),
    "berkeley": Layout("berkeley", "images", "masks", _gt_grabcut),
    "davis": Layout("davis", "img", "gt", _gt_davis),
    "coco_mval": Layout("coco_mval", "img", "gt", _gt_coco_mval),
    "sbd": Layout("sbd", "img", "inst", None),
    "generic": Layout("generic", "images", "masks", _gt_generic),
}

# Dataset names as the papers / official scripts spell them -> layout.
_ALIASES = {
    "grabcut": "grabcut", "berkeley": "berkeley", "davis": "davis", "coco_mval": "coco_mval",
    "cocomval": "coco_mval", "mval": "coco_mval", "sbd": "sbd", "generic": "generic",
    "imagesmasks": "generic",
}


def _alias(name: str) -> str | None:
    key = name.strip().lower()
    return _ALIASES.get(key) or _ALIASES.get(re.sub(r"[^a-z0-9]", "", key))


@dataclass(frozen=True)
class _Entry:
    name: str
    image: Path
    mask: Path
    instance: int | None = None


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _mask_index(folder: Path, exts: tuple[str, ...]) -> dict[str, Path]:
    rank = {e: i for i, e in enumerate(exts)}
    index: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in rank:
            old = index.get(p.stem)
            if old is None or rank[p.suffix.lower()] < rank[old.suffix.lower()]:
                index[p.stem] = p
    return index


def _load_sbd_instances(path: Path) -> np.ndarray:
    try:
        from scipy.io import loadmat
    except ImportError:  # pragma: no cover - scipy is an optional extra
        raise ValueError("the SBD layout needs scipy to read .mat files; `pip install scipy`.") from None
    try:
        mat = loadmat(str(path))
        return np.asarray(mat["GTinst"]["Segmentation"][0][0])
    except Exception as exc:  # scipy raises several unrelated types for broken files
        raise ValueError(f"cannot read SBD instance file {path} ({type(exc).__name__}); "
                         "expected a GTinst struct with a Segmentation field.") from None


class SegmentationDataset:
    """Lazy dataset: ``len(ds)``, ``ds[i]`` or ``ds["name"]`` -> :class:`Sample`, ``ds.names``,
    ``ds.skipped`` ({"no_mask": [...], "empty_mask": [...]}, image stems)."""

    def __init__(self, root: str | Path, layout: str, name: str | None = None, split: str = "val",
                 check_masks: bool = True) -> None:
        resolved = _alias(layout)
        if resolved is None:
            raise ValueError(f"unknown layout {layout!r}; use one of {sorted(LAYOUTS)} or load_dataset().")
        self.layout = LAYOUTS[resolved]
        self.root = Path(root)
        self.name = name or self.root.name
        self.skipped: dict[str, list[str]] = {"no_mask": [], "empty_mask": []}
        if not self.root.is_dir():
            raise ValueError(f"dataset folder {self.root} does not exist; pass the folder that holds "
                             f"{self.layout.images_dir}/ and {self.layout.masks_dir}/.")
        for sub in (self.layout.images_dir, self.layout.masks_dir):
            if not (self.root / sub).is_dir():
                raise ValueError(f"{self.root} has no {sub}/ folder, which the {self.layout.name} layout "
                                 f"needs ({self.layout.images_dir}/ + {self.layout.masks_dir}/); "
                                 "check the path or the layout name.")
        if self.layout.gt_from_mask is None:
            entries = self._sbd_entries(split)
        else:
            entries = self._paired_entries(check_masks)
        self._entries = entries
        self.names: list[str] = [e.name for e in entries]
        self._by_name = {e.name: i for i, e in enumerate(entries)}

    # -- construction -------------------------------------------------------------------------
    def _paired_entries(self, check_masks: bool) -> list[_Entry]:
        img_dir = self.root / self.layout.images_dir
        mask_dir = self.root / self.layout.masks_dir
        images = _list_images(img_dir)
        if not images:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTS)}) in {img_dir}; check the dataset path.")
        masks = _mask_index(mask_dir, MASK_EXT_PREFERENCE)
        dup = {stem for stem, n in Counter(p.stem for p in images).items() if n > 1}
        entries = []
        for img in images:
            mask = masks.get(img.stem)
            if mask is None:
                self.skipped["no_mask"].append(img.stem)
                continue
            # Two images with one stem (a.jpg, a.png) keep their extension so names stay unique.
            entry = _Entry(img.name if img.stem in dup else img.stem, img, mask)
            if check_masks and not (self._gt(entry) == 1).any():
                self.skipped["empty_mask"].append(entry.name)
                continue
            entries.append(entry)
        if not entries:
            raise ValueError(f"none of the {len(images)} images in {img_dir} has a usable mask in {mask_dir} "
                             f"({len(self.skipped['no_mask'])} without a mask of the same file stem, "
                             f"{len(self.skipped['empty_mask'])} with an empty mask).")
        return entries

    def _sbd_entries(self, split: str) -> list[_Entry]:
        img_dir, inst_dir = self.root / "img", self.root / "inst"
        list_file = self.root / f"{split}.txt"
        if list_file.is_file():
            stems = [s.strip() for s in list_file.read_text().splitlines() if s.strip()]
        else:
            stems = sorted(p.stem for p in inst_dir.glob("*.mat"))
        if not stems:
            raise ValueError(f"no .mat instance files in {inst_dir} and no {list_file.name}; "
                             "check the SBD dataset path.")
        entries = []
        for stem in stems:
            mat = inst_dir / f"{stem}.mat"
            image = img_dir / f"{stem}.jpg"
            if not mat.is_file() or not image.is_file():
                self.skipped["no_mask"].append(stem)
                continue
            ids = np.unique(_load_sbd_instances(mat))
            ids = [int(i) for i in ids if i != 0]
            if not ids:
                self.skipped["empty_mask"].append(stem)
            entries.extend(_Entry(f"{stem}#{i}", image, mat, i) for i in ids)
        if not entries:
            raise ValueError(f"no usable SBD instances under {self.root} ({len(self.skipped['no_mask'])} "
                             f"listed images without img/<name>.jpg + inst/<name>.mat).")
        return entries

    # -- access -------------------------------------------------------------------------------
    def _gt(self, entry: _Entry) -> np.ndarray:
        if entry.instance is not None:
            return (_load_sbd_instances(entry.mask) == entry.instance).astype(np.int8)
        return self.layout.gt_from_mask(_read_color(entry.mask, "mask"))

    def _index(self, key: int | str) -> int:
        if isinstance(key, str):
            if key not in self._by_name:
                raise KeyError(f"no sample named {key!r} in {self.name}")
            return self._by_name[key]
        n = len(self._entries)
        if not -n <= key < n:
            raise IndexError(f"sample index {key} out of range for {n} samples")
        return key % n

    def image_path(self, key: int | str) -> Path:
        return self._entries[self._index(key)].image

    def load_gt(self, key: int | str) -> np.ndarray:
        """Only the ground truth (cheap: no image decode)."""
        return self._gt(self._entries[self._index(key)])

    def __getitem__(self, key: int | str) -> Sample:
        entry = self._entries[self._index(key)]
        image = read_image_rgb(entry.image)
        gt = self._gt(entry)
        if gt.shape != image.shape[:2]:
            raise ValueError(f"mask {entry.mask} is {gt.shape[1]}x{gt.shape[0]} but image {entry.image} is "
                             f"{image.shape[1]}x{image.shape[0]}; masks must match their image size.")
        return Sample(entry.name, image, gt)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        skipped = sum(len(v) for v in self.skipped.values())
        return (f"SegmentationDataset({self.name!r}, layout={self.layout.name!r}, samples={len(self)}, "
                f"skipped={skipped})")


_DETECTION_ORDER = (
    ("grabcut", ("data_GT", "boundary_GT")),
    ("sbd", ("img", "inst")),
    ("davis", ("img", "gt")),
    ("generic", ("images", "masks")),
)


def detect_layout(path: str | Path) -> str:
    """Layout name from the sub-folders of ``path`` (``img/``+``gt/`` reads as DAVIS, ``images/``+
    ``masks/`` as generic > 127 masks)."""
    root = Path(path)
    if not root.is_dir():
        raise ValueError(f"dataset folder {root} does not exist; check the path.")
    subdirs = {p.name for p in root.iterdir() if p.is_dir()}
    for layout, needed in _DETECTION_ORDER:
        if all(n in subdirs for n in needed):
            return layout
    raise ValueError(f"cannot tell the layout of {root} (sub-folders: {sorted(subdirs) or 'none'}); expected "
                     "data_GT/+boundary_GT/, images/+masks/, img/+gt/ or img/+inst/.")


def load_dataset(name_or_layout: str, path: str | Path, check_masks: bool = True) -> SegmentationDataset:
    """Open ``path`` with the layout named by ``name_or_layout`` (a dataset name such as "GrabCut",
    "Berkeley", "DAVIS", "COCO_MVal", "SBD", or a layout name). Any other name ("auto", "DUTS", ...)
    uses the folder's own name when that is a known dataset with matching sub-folders, else the
    sub-folders alone."""
    root = Path(path)
    layout = _alias(name_or_layout)
    display = name_or_layout
    if layout is None:
        display = root.name if name_or_layout.strip().lower() in ("", "auto") else name_or_layout
        by_folder = _alias(root.name)
        spec = LAYOUTS.get(by_folder or "")
        if spec is not None and (root / spec.images_dir).is_dir() and (root / spec.masks_dir).is_dir():
            layout = by_folder
        else:
            layout = detect_layout(root)
    return SegmentationDataset(root, layout, name=display, check_masks=check_masks)


__all__ = ["IMAGE_EXTS", "LAYOUTS", "Layout", "Sample", "SegmentationDataset", "detect_layout",
           "load_dataset", "read_image_rgb"]
