"""How often the offline engine is right on real photos (``bench.photo_set``).

- Verification: every pair of the labelled faces, same person or not, compared at
  dlib's threshold (distance 0.6, score 0.40), today's way (the largest HOG box with the
  iBUG landmarks) and the engine's (mesh-verified main face);
- glasses: the check's ``glasses`` against the label, per face;
- the new fields on each face, for looking at: gaze, eyes, mouth, shoulders, age and
  gender. ``--sheet PATH`` draws them on a contact sheet.

    python -m bench.accuracy [--sheet bench/results/accuracy.png]
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bench.photo_set import Photo, fetch, labels
from services.images import prepare_image
from services.local import measure, vision
from services.local.vision import EngineConfig
from services.providers.local import LOCAL_LIMITS

RESULTS = Path(__file__).parent / "results"
THRESHOLD = 0.6
MESH = EngineConfig()
IBUG = EngineConfig(landmarks="68")


def old_descriptor(data: bytes) -> np.ndarray | None:
    """Today's choice: the largest box the detector finds, whatever it is."""
    models = vision.models_for(IBUG)
    picture = vision.decode(data)
    found = vision._run_detector(models, picture.small, 0) or vision._run_detector(
        models, picture.small, 1
    )
    if not found:
        return None
    sx, sy = picture.scale
    left, top, right, bottom, score = max(found, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    box = vision.Detection(left * sx, top * sy, right * sx, bottom * sy, score)
    reading = measure.read_face(models, picture, box, with_descriptor=True)
    assert reading.descriptor is not None
    return reading.descriptor


def new_descriptor(data: bytes) -> np.ndarray | None:
    described = measure.describe_photo(MESH, data)
    return np.array(described.descriptors[0]) if described.descriptors else None


def verification(photos: list[Photo], data: dict[str, bytes]) -> dict[str, object]:
    out: dict[str, object] = {}
    for label, describe in (("today", old_descriptor), ("engine", new_descriptor)):
        found = {p.key: describe(data[p.key]) for p in photos if p.identity}
        faces = [p for p in photos if p.identity and found[p.key] is not None]
        same = [0, 0]  # right, wrong
        other = [0, 0]
        for a, b in itertools.combinations(faces, 2):
            distance = float(np.linalg.norm(found[a.key] - found[b.key]))  # type: ignore[operator]
            matched = distance < THRESHOLD
            if a.identity == b.identity:
                same[0 if matched else 1] += 1
            else:
                other[0 if not matched else 1] += 1
        total = sum(same) + sum(other)
        out[label] = {
            "faces": len(faces),
            "missed_faces": sum(1 for p in photos if p.identity and found[p.key] is None),
            "same_pairs": sum(same),
            "same_right": same[0],
            "different_pairs": sum(other),
            "different_right": other[0],
            "accuracy": round((same[0] + other[0]) / total, 4) if total else None,
        }
    return out


def measured(photos: list[Photo], data: dict[str, bytes]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for photo in photos:
        image = prepare_image(data[photo.key], LOCAL_LIMITS)
        output = measure.check_photo(MESH, image.data, image.original)
        m = output.measurements
        faces = measure.read_faces(MESH, data[photo.key], 1, True).faces
        row: dict[str, object] = {"photo": photo.name, "label_glasses": photo.glasses}
        if m is not None:
            row.update(
                glasses=m.glasses,
                eyes_sight=m.eyes_sight,
                eyes_close=m.eyes_close,
                mouth_close=m.mouth_close,
                shoulder_equal=m.shoulder_equal,
                background_clean=m.background_clean,
                head_top=m.head_top,
            )
        if faces:
            row.update(age=faces[0].age, gender=faces[0].gender)
        rows.append(row)
    return rows


# What the engine's value says, field by field: the rule's own bound where there is one.
SEEN = {
    "glasses": lambda m: None if m.get("glasses") is None else m["glasses"] != "no_glasses",
    "eyes": lambda m: None if m.get("eyes_close") is None else m["eyes_close"] < 80,
    "mouth": lambda m: None if m.get("mouth_close") is None else m["mouth_close"] < 60,
    "gaze": lambda m: None if m.get("eyes_sight") is None else m["eyes_sight"] < 50,
}
# The label that the engine should flag (glasses on, eyes closed, mouth open, eyes away).
FLAGGED = {"glasses": {"glasses", "sunglasses"}, "eyes": {"closed"}, "mouth": {"open"},
           "gaze": {"away"}}  # fmt: skip


def confusion(photos: list[Photo], rows: list[dict[str, object]]) -> dict[str, dict[str, int]]:
    """Per field: labelled faces the engine flagged or not, both ways, and the faces it
    did not measure."""
    table: dict[str, dict[str, int]] = {}
    for field, seen in SEEN.items():
        counts = {"flag_right": 0, "flag_missed": 0, "clear_right": 0, "clear_wrong": 0,
                  "not_measured": 0}  # fmt: skip
        for photo, row in zip(photos, rows, strict=True):
            label = getattr(photo, field)
            if not label:
                continue
            flagged = seen(row)
            should = label in FLAGGED[field]
            if flagged is None:
                counts["not_measured"] += 1
            elif should:
                counts["flag_right" if flagged else "flag_missed"] += 1
            else:
                counts["clear_wrong" if flagged else "clear_right"] += 1
        table[field] = counts
    return table


def _shown(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if isinstance(value, float) else str(value)


def sheet(
    photos: list[Photo], data: dict[str, bytes], rows: list[dict[str, object]], to: Path
) -> None:
    """Each photo with its fields under it: g(aze), e(yes), m(outh), s(houlders),
    the glasses seen and labelled, age, gender, background."""
    tile, columns = 220, 8
    height = ((len(rows) + columns - 1) // columns) * tile
    canvas = Image.new("RGB", (columns * tile, height), "white")
    draw = ImageDraw.Draw(canvas)
    for index, (photo, row) in enumerate(zip(photos, rows, strict=True)):
        with Image.open(io.BytesIO(prepare_image(data[photo.key], LOCAL_LIMITS).data)) as opened:
            thumb = opened.convert("RGB")
        thumb.thumbnail((tile, tile - 44))
        x, y = (index % columns) * tile, (index // columns) * tile
        canvas.paste(thumb, (x, y))
        f = {key: _shown(value) for key, value in row.items()}
        lines = (
            f"{index} g{f.get('eyes_sight')} e{f.get('eyes_close')} m{f.get('mouth_close')}"
            f" s{f.get('shoulder_equal')}",
            f"{f.get('glasses', '-')[:8]} / {photo.glasses} a{f.get('age')}",
            f"{f.get('gender', '-')} bg{f.get('background_clean')}",
        )
        for k, line in enumerate(lines):
            draw.text((x + 2, y + tile - 44 + 14 * k), line, fill="black")
    to.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(to)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sheet", type=Path)
    args = parser.parse_args()
    paths = fetch()
    photos = [p for p in labels() if p.key in paths]
    data = {p.key: paths[p.key].read_bytes() for p in photos}
    rows = measured(photos, data)
    report = {
        "photos": len(photos),
        "verification": verification(photos, data),
        "fields": confusion(photos, rows),
        "faces": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "accuracy.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "faces"}, indent=1))
    if args.sheet:
        sheet(photos, data, rows, args.sheet)


if __name__ == "__main__":
    main()
