"""The scene models as the audit runs them, against the original TFLite files on real photos.

- The segmenter runs a copy of the DeepLab graph cut before its two final resizes; its 129x129 class
  map must give the class shares of the original graph's 513x513 output (argmax) on real photos.
- The MobileNets run unchanged; their pre-processing (cv2, INTER_AREA) is checked against an
  independent reference (PIL bilinear resize, the original file loaded by path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from masking.audit.scene_models import Embedder, ImageNetClassifier, Segmenter, without_final_resizes
from masking.models.cache import verified_model_path
from masking.models.registry import load_registry
from masking.video.images import read_image

PHOTOS = ("hotel_room_012.jpg", "bathroom_004.jpg", "changing_room_002.jpg", "corridor_001.jpg", "shower_room_004.jpg")


def _photos(dev_dir: Path) -> list[Path]:
    found = [dev_dir / "images" / n for n in PHOTOS if (dev_dir / "images" / n).is_file()]
    assert len(found) >= 4, f"expected the dev photos {PHOTOS}"
    return found


def _original(name: str) -> object:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(verified_model_path(name)), num_threads=2)
    it.allocate_tensors()
    return it


def _reference_input(path: Path, size: int, floats: bool) -> np.ndarray:
    """Independent pre-processing: PIL opens the file as RGB and resizes it bilinearly."""
    rgb = np.asarray(Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR))
    return (rgb.astype(np.float32) / 127.5 - 1.0)[None] if floats else rgb[None]


def _invoke(it: object, x: np.ndarray) -> np.ndarray:
    inp = it.get_input_details()[0]  # type: ignore[attr-defined]
    out = it.get_output_details()[0]  # type: ignore[attr-defined]
    it.set_tensor(inp["index"], x)  # type: ignore[attr-defined]
    it.invoke()  # type: ignore[attr-defined]
    raw = it.get_tensor(out["index"])[0]  # type: ignore[attr-defined]
    scale, zero = out["quantization"]
    return (raw.astype(np.float32) - zero) * scale if scale else raw.astype(np.float32)


def test_registry_entries_and_labels() -> None:
    reg = load_registry()
    for name, n_out in (("deeplabv3-ade20k", 151), ("mobilenetv2-imagenet", 1001)):
        entry = reg.get(name)
        assert entry.license == "Apache-2.0" and entry.task == "scenes" and entry.mirror_path.startswith("scene/")  # type: ignore[union-attr]
        assert len(entry.static_class_names or ()) == n_out
    assert reg.get("deeplabv3-ade20k").static_class_names[8] == "bed"  # type: ignore[index]
    assert reg.get("mobilenetv2-imagenet").static_class_names[795] == "shower curtain"  # type: ignore[index]
    assert reg.get("mobilenetv1-embedding").license == "Apache-2.0"


def test_cut_graph_ends_at_the_logits() -> None:
    data = verified_model_path("deeplabv3-ade20k").read_bytes()
    pruned, cut = without_final_resizes(data)
    assert cut == 2 and len(pruned) == len(data) and pruned != data
    same, none = without_final_resizes(verified_model_path("mobilenetv2-imagenet").read_bytes())
    assert none == 0  # a classifier does not end with a resize: untouched


@pytest.mark.slow
def test_segmenter_gives_the_original_class_shares(dev_dir: Path) -> None:
    seg = Segmenter("deeplabv3-ade20k")
    full = _original("deeplabv3-ade20k")
    for path in _photos(dev_dir):
        ours = seg.labels(read_image(path))
        ref = _invoke(full, _reference_input(path, 513, floats=True)).argmax(axis=-1)
        assert ours.shape == (129, 129) and ref.shape == (513, 513)
        s_ours = np.bincount(ours.ravel(), minlength=151) / ours.size
        s_ref = np.bincount(ref.ravel(), minlength=151) / ref.size
        assert np.abs(s_ours - s_ref).max() < 0.03, (path.name, np.abs(s_ours - s_ref).max())
        assert np.abs(s_ours - s_ref).sum() < 0.15, path.name
        top_ours, top_ref = set(np.argsort(-s_ours)[:3]), set(np.argsort(-s_ref)[:3])
        assert len(top_ours & top_ref) >= 2, path.name


@pytest.mark.slow
def test_mobilenets_match_an_independent_preprocessing(dev_dir: Path) -> None:
    cls = ImageNetClassifier("mobilenetv2-imagenet")
    emb = Embedder("mobilenetv1-embedding")
    ref_cls = _original("mobilenetv2-imagenet")
    ref_emb = _original("mobilenetv1-embedding")
    for path in _photos(dev_dir):
        img = read_image(path)
        p = cls.scores(img)
        q = _invoke(ref_cls, _reference_input(path, 224, floats=False))
        assert p.shape == (1001,) and 0.85 < float(p.sum()) < 1.05  # a uint8 softmax: small scores round to 0
        assert len(set(np.argsort(-p)[:5]) & set(np.argsort(-q)[:5])) >= 3, path.name
        e = emb.embed(img)
        f = _invoke(ref_emb, _reference_input(path, 224, floats=False)).reshape(-1)
        cos = float(e @ f / (np.linalg.norm(e) * np.linalg.norm(f)))
        assert e.shape == (1024,) and cos > 0.95, (path.name, cos)
