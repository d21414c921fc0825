"""Faces left in report pictures: OpenCV's own YuNet (cv2.FaceDetectorYN) as an independent reference.

For every photo of a labelled set in which the reference finds a face, it counts the faces the
reference finds in: the photo, the photo made safe by `PrivacyFilter` (zones none, faces blurred) at
full resolution, the report picture (320 px JPEG) made from it, and the unmasked report picture
(`--show-unmasked`). Prints one row per photo and the totals, and the time per picture.

    .venv/bin/python benchmarks/report_privacy.py ../shared/eval/dev
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from masking.report.pictures import PrivacyFilter, report_picture

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "models" / "face" / "face_detection_yunet_2026may.onnx"


def reference_faces(image: npt.NDArray[np.uint8], model: Path, threshold: float) -> int:
    h, w = image.shape[:2]
    det = cv2.FaceDetectorYN.create(str(model), "", (w, h), threshold)
    det.setInputSize((w, h))
    _, faces = det.detect(image)
    return 0 if faces is None else len(faces)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path, help="A labelled set (its images/ folder is read), e.g. ../shared/eval/dev")
    ap.add_argument("--reference", type=Path, default=REFERENCE, help="YuNet ONNX file for cv2.FaceDetectorYN")
    ap.add_argument("--threshold", type=float, default=0.5, help="Reference score threshold (default 0.5)")
    args = ap.parse_args()
    images = sorted((args.folder / "images").glob("*.jpg")) or sorted(args.folder.glob("*.jpg"))
    if not images:
        print(f"no .jpg under {args.folder}", file=sys.stderr)
        return 2
    masked, shown = PrivacyFilter(), PrivacyFilter(show_unmasked=True)
    rows = []
    seconds = 0.0
    for path in images:
        img = cv2.imread(str(path))
        if img is None:
            continue
        found = reference_faces(img, args.reference, args.threshold)
        if not found:
            continue
        t0 = time.perf_counter()
        safe, _, blurred, _ = masked.apply(img, None)
        picture = report_picture(img, None, masked)
        seconds += time.perf_counter() - t0
        thumb = cv2.imdecode(np.frombuffer(picture.jpeg, np.uint8), cv2.IMREAD_COLOR)
        plain = cv2.imdecode(np.frombuffer(report_picture(img, None, shown).jpeg, np.uint8), cv2.IMREAD_COLOR)
        rows.append((path.name, found, blurred, reference_faces(safe, args.reference, args.threshold),
                     reference_faces(thumb, args.reference, args.threshold),
                     reference_faces(plain, args.reference, args.threshold)))
    print(f"Faces the reference (cv2.FaceDetectorYN, score >= {args.threshold}) finds, {len(images)} photos, "
          f"{len(rows)} with faces\n")
    head = ("photo", "photo", "blurred", "safe full-res", "report picture", "unmasked picture")
    print(f"{head[0]:28s} {head[1]:>6s} {head[2]:>8s} {head[3]:>14s} {head[4]:>15s} {head[5]:>17s}")
    for name, *counts in rows:
        print(f"{name:28s} {counts[0]:6d} {counts[1]:8d} {counts[2]:14d} {counts[3]:15d} {counts[4]:17d}")
    totals = [sum(r[i] for r in rows) for i in range(1, 6)]
    print(f"{'total':28s} {totals[0]:6d} {totals[1]:8d} {totals[2]:14d} {totals[3]:15d} {totals[4]:17d}")
    clean = sum(1 for r in rows if r[3] == 0 and r[4] == 0)
    print(f"\nphotos with no face left (full-res and picture): {clean} of {len(rows)}; "
          f"{1000 * seconds / max(1, len(rows)):.0f} ms per picture (safe frame + picture, face model loaded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
