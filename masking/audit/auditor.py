"""`Auditor`: run the evidence models over an input's frames and decide the Art. 7 verdict."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
from shapely.geometry.base import BaseGeometry

from masking.art7 import article_for, kind_of
from masking.audit.coverage import area_share, masked_union
from masking.audit.evidence import EvidenceMap, evidence_map, frame_evidence
from masking.audit.fused import FusedJudge
from masking.audit.proposal import propose_masks
from masking.audit.result import AuditFrame, AuditResult, Evidence, ProposedMask
from masking.audit.scene_evidence import SceneModels
from masking.audit.settings import AuditSettings
from masking.audit.verdict import (
    Decision,
    FrameJudgement,
    KindScore,
    decide,
    decide_fused,
    frame_scores,
)
from masking.config.zones import Camera
from masking.detect.base import Detector
from masking.detect.detections import Detections
from masking.errors import InputError
from masking.models.registry import load_registry

log = logging.getLogger(__name__)


def tile_grid(width: int, height: int, n: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """`n` x `n` overlapping tiles `(x0, y0, x1, y1)` covering a `width` x `height` view."""
    if n <= 1:
        return []
    tw = int(math.ceil(width / (n - (n - 1) * overlap)))
    th = int(math.ceil(height / (n - (n - 1) * overlap)))
    xs = np.linspace(0, width - tw, n).round().astype(int)
    ys = np.linspace(0, height - th, n).round().astype(int)
    return [(int(x), int(y), int(x) + tw, int(y) + th) for y in ys for x in xs]


def _same_objects(tile: Detections, whole: Detections, iou: float, inside: float = 0.7) -> npt.NDArray[np.bool_]:
    """(n_tile, n_whole): tile box i shows the object of whole-view box j (same class name, and IoU >=
    `iou` or tile box mostly, >= `inside` of its area, inside the whole-view box)."""
    if not len(tile) or not len(whole):
        return np.zeros((len(tile), len(whole)), bool)
    a, b = tile.xyxy, whole.xyxy
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    same = tile.names[:, None] == whole.names[None, :]
    return np.asarray(same & ((inter >= iou * np.maximum(union, 1e-6)) | (inter >= inside * np.maximum(area_a, 1e-6)[:, None])))


def _with_tiles(whole: Detections, tiles: list[Detections], iou: float) -> Detections:
    """Whole-view and tile detections of one model as one set. An object the whole view found keeps
    the whole view's box (a tile cuts objects at its edges: two halves of one bed are not two beds)
    and the best score any view gave it; tile boxes of objects the whole view missed are added."""
    parts = [whole]
    conf = whole.confidence.copy()
    for d in tiles:
        match = _same_objects(d, whole, iou)
        if match.size:
            conf = np.maximum(conf, np.where(match, d.confidence[:, None], 0.0).max(axis=0))
        parts.append(d[np.asarray(~match.any(axis=1), bool)] if match.size else d)
    parts[0] = Detections(whole.xyxy, conf.astype(np.float32), whole.class_id, whole.class_names)
    return Detections.merge(parts)


def load_evidence_models(models: list[str], threads: int, min_score: float) -> dict[str, Detector]:
    """Detectors for `models` (registry names); scene classifiers for family `scenes`."""
    from masking.audit.scenes import load_scene_classifier
    from masking.detect.factory import load_detector

    reg = load_registry()
    out: dict[str, Detector] = {}
    for name in models:
        if reg.get(name).family == "scenes":
            out[name] = load_scene_classifier(name, threads=threads)
        else:
            out[name] = load_detector(name, threads=threads, conf=min_score)
    return out


def sample_video(
    path: str | Path, sample_fps: float, max_frames: int, start_s: float = 0.0, end_s: float | None = None
) -> Iterator[AuditFrame]:
    """Frames of a clip (or of its window `[start_s, end_s)`) to audit: at most `sample_fps` per
    second and `max_frames` in all, spread over the whole window by PTS (`masking.video.sampling`)."""
    from masking.video.sampling import sample_clip

    for f in sample_clip(path, sample_fps, max_frames, start_s, end_s):
        yield AuditFrame(f.image, f.index, f.time_s)


class Auditor:
    """Audits views (images or clips) against a camera's zones.

    Args:
        settings: audit settings (default `AuditSettings()`).
        detectors: model name -> detector to use instead of loading `settings.models` (tests, or
            sharing loaded models); names must be registry models unless `evidence` maps them.
        threads: ONNX Runtime / LiteRT threads per loaded model.
        evidence: model name -> class -> rule, instead of the registry's `evidence:` blocks.
        scenes: the scene models to use instead of loading `settings.scene_models` (fusion only).
        judge: the fusion judge (model + feature space) instead of loading `settings.fusion_model`.
    """

    def __init__(
        self,
        settings: AuditSettings | None = None,
        detectors: Mapping[str, Detector] | None = None,
        threads: int = 2,
        *,
        evidence: EvidenceMap | None = None,
        scenes: SceneModels | None = None,
        judge: FusedJudge | None = None,
    ) -> None:
        self.settings = settings or AuditSettings()
        if detectors is None:
            detectors = load_evidence_models(self.settings.models, threads, self.settings.min_score)
        self.detectors: dict[str, Detector] = dict(detectors)
        self.evidence_map: EvidenceMap = evidence if evidence is not None else evidence_map(list(self.detectors))
        self.scenes: SceneModels | None = None
        self.judge: FusedJudge | None = None
        if self.settings.verdict == "fusion":
            self.judge = judge or FusedJudge.load(self.settings.fusion_model, self.settings.scene_models)
            self.judge.check_detectors(list(self.detectors))
            self.scenes = scenes if scenes is not None else SceneModels(self.settings.scene_models, threads)

    # ------------------------------------------------------------------ detection
    def _detect(self, image: npt.NDArray[np.uint8]) -> dict[str, Detections]:
        h, w = image.shape[:2]
        tiles = tile_grid(w, h, self.settings.tiles, self.settings.tile_overlap)
        out: dict[str, Detections] = {}
        for name, det in self.detectors.items():
            found = det.detect(image[None])[0]
            if tiles and not getattr(det, "whole_view", False):
                crops = np.stack([image[y0:y1, x0:x1] for x0, y0, x1, y1 in tiles])
                parts = []
                for (x0, y0, _, _), d in zip(tiles, det.detect(crops)):
                    d = d[d.confidence >= self.settings.tile_min_score]  # a tile must be surer (see settings)
                    parts.append(Detections(d.xyxy + np.array([x0, y0, x0, y0], np.float32), d.confidence, d.class_id, d.class_names))
                found = _with_tiles(found, parts, self.settings.same_object_iou)
            out[name] = found
        return out

    # ------------------------------------------------------------------ auditing
    def audit_frames(self, frames: Iterable[AuditFrame], camera: Camera | None, input_name: str) -> AuditResult:
        """Audit the frames of one input (all of them: sample clips before, see `audit_path`)."""
        st = self.settings
        masked = masked_union(camera)
        rule_frames: list[tuple[int, dict[str, KindScore]]] = []
        fused_frames: list[tuple[int, FrameJudgement]] = []
        evidence: list[Evidence] = []
        snapshot: npt.NDArray[np.uint8] | None = None
        snapshot_frame: int | None = None
        overlay: dict[str, object] | None = None
        best = -1.0
        n_frames = 0
        for frame in frames:
            img = np.asarray(frame.image)
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 2:
                raise InputError(f"{input_name}: frame {frame.index} is not a BGR uint8 image (got {img.dtype} {img.shape})")
            n_frames += 1
            outputs = self._detect(img)
            size = (img.shape[1], img.shape[0])
            if self.judge is None:
                items = frame_evidence(outputs, self.evidence_map, size, masked, st, frame.index, frame.time_s)
                items = [replace(e, id=f"e{len(evidence) + k + 1}") for k, e in enumerate(items)]
                scores = frame_scores(items, st)
                rule_frames.append((frame.index, scores))
                top = max([s.strength for s in scores.values()] + [0.0])
                frame_overlay = None
            else:
                assert self.scenes is not None
                items, judgement, frame_overlay = self.judge.frame(
                    outputs, self.evidence_map, self.scenes.observe(img), size, masked, st, frame.index,
                    frame.time_s, first_id=len(evidence) + 1,
                )
                fused_frames.append((frame.index, judgement))
                top = judgement.gated
            evidence += items
            if top > best:
                best, snapshot, snapshot_frame, overlay = top, img, frame.index, frame_overlay
        if not n_frames:
            raise InputError(f"{input_name}: no frames to audit")
        fusion_doc: dict[str, object] | None = None
        if self.judge is None:
            decision = decide(rule_frames, st)
            to_cover = [e for e in evidence if not e.masked and kind_of(e.category) in decision.kinds]
        else:
            decision = decide_fused(fused_frames, self.judge.violation, self.judge.review, st.min_frames)
            to_cover = self._fused_cover(decision, fused_frames, evidence, masked)
            fusion_doc = self.judge.document(fused_frames, snapshot_frame)
        proposals, hidden = propose_masks(to_cover, st.proposal_margin, masked)
        return self._result(decision, evidence, proposals, hidden, camera, input_name, n_frames, snapshot,
                            snapshot_frame, fusion_doc, overlay)

    def _fused_cover(
        self, decision: Decision, frames: list[tuple[int, FrameJudgement]], evidence: list[Evidence],
        masked: BaseGeometry | None,
    ) -> list[Evidence]:
        """What the proposed masks must hide: the deciding items of the frames that made the verdict,
        or the whole view when a frame decided without localised evidence."""
        if decision.verdict == "compliant":
            return []
        made = [j for i, j in frames if i in decision.evidence_frames]
        ids = {e for j in made for e in j.items}
        cover = [e for e in evidence if e.id in ids]
        if any(j.whole_view for j in made):
            cover.append(Evidence(
                id="view", class_name="whole view", model="fusion", category=decision.category or "none",
                score=1.0, weight=1.0, strength=1.0, strong=True, xyxy=(0.0, 0.0, 1.0, 1.0),
                xyxy_norm=(0.0, 0.0, 1.0, 1.0), masked=False, masked_share=area_share(masked),
                frame=(decision.evidence_frames or [frames[0][0]])[0],
            ))
        return cover

    def _result(
        self, decision: Decision, evidence: list[Evidence], proposals: list[ProposedMask], hidden: float,
        camera: Camera | None, input_name: str, n_frames: int, snapshot: npt.NDArray[np.uint8] | None,
        snapshot_frame: int | None, fusion_doc: dict[str, object] | None, overlay: dict[str, object] | None,
    ) -> AuditResult:
        st = self.settings
        if decision.verdict == "violation":
            recommendation = "re-aim" if hidden > st.max_hidden_share else "add-masks"
        elif decision.verdict == "review":
            recommendation = "inspect"
        else:
            recommendation = "none"
        reason = decision.reason
        n_masked = sum(e.masked for e in evidence)
        if n_masked:
            reason += f"; {n_masked} evidence item(s) already masked by the camera's zones"
        if recommendation == "re-aim":
            reason += f"; the masks would hide {hidden:.0%} of the view (> {st.max_hidden_share:.0%}): move or re-aim the camera"
        models = list(self.detectors) + (self.scenes.names if self.scenes is not None else [])
        return AuditResult(
            input=input_name,
            camera_id=camera.camera_id if camera else None,
            verdict=decision.verdict,
            category=decision.category,
            confidence=float(decision.confidence),
            article=article_for(decision.category),
            evidence=evidence,
            proposed_masks=proposals,
            hidden_share=hidden if proposals else 0.0,
            recommendation=recommendation,  # type: ignore[arg-type]
            frames_sampled=n_frames,
            evidence_frames=decision.evidence_frames,
            category_strengths=decision.strengths,
            models=models,
            reason=reason,
            snapshot=snapshot,
            snapshot_frame=snapshot_frame,
            fusion=fusion_doc,
            segmentation=overlay,
        )

    def audit_path(self, path: Path, camera: Camera | None) -> AuditResult:
        """Audit an image file, or a clip sampled by `sample_video` (`sample_fps`, `max_frames`)."""
        from masking.media import is_image_path
        from masking.video.images import read_image

        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such file")
        if is_image_path(p):
            frames: Iterable[AuditFrame] = [AuditFrame(read_image(p), 0, None)]
        else:
            frames = sample_video(p, self.settings.sample_fps, self.settings.max_frames)
        return self.audit_frames(frames, camera, str(p))
