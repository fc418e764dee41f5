"""Translate a Labelme folder into X-ray style with a trained CycleGAN generator.

Paper 1, §4.2: photos of prohibited items, translated by CycleGAN (Zhu et al. 2017),
join the X-ray training set. A translation moves no pixel (the generator is fully
convolutional and keeps the geometry), so the annotations stay valid: every output
JSON is the input JSON with the same shapes, ``imageHeight`` and ``imageWidth``,
``imagePath`` naming the translated PNG beside it, and ``imageData`` holding that
PNG in base64 if the input embedded its image (else null).

Each image is translated whole, at its own size: it is padded by reflection to a
multiple of 4 (the generator downsamples twice) and cropped back afterwards. The
generator saw crops at the training scale, so images should have a similar pixel
scale (e.g. made with the same ``--size``).
"""

from __future__ import annotations

import base64
import copy
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

import xray_seg.synthesis.cyclegan.layers  # noqa: F401  (registers the custom layers load_generator reads)
from xray_seg.conversion.labelme import load_labelme_json, read_labelme
from xray_seg.conversion.readers import list_json_files
from xray_seg.core.errors import DatasetError, OutputExistsError
from xray_seg.core.fileio import prepare_output_dir, write_bytes_atomic, write_json_atomic
from xray_seg.synthesis.cyclegan.trainer import GENERATOR_A2B, GENERATOR_B2A, CycleGANError
from xray_seg.synthesis.scene import encode_png  # the PNG encoding synth writes its images with

MULTIPLE = 4


@dataclass
class TranslateReport:
    out_dir: Path
    translated: list = field(default_factory=list)
    failures: list = field(default_factory=list)  # (file, message)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 0

    def summary(self) -> str:
        lines = [f"translated {len(self.translated)} images into {self.out_dir} in {self.seconds:.1f} s"]
        if self.failures:
            lines.append(f"{len(self.failures)} files skipped:")
            lines += [f"  {message}" for _, message in self.failures]
        return "\n".join(lines)


def load_generator(run_dir: str | Path, direction: str = "a2b"):
    """The saved generator of a run (``a2b``: photo -> X-ray)."""
    path = Path(run_dir) / (GENERATOR_A2B if direction == "a2b" else GENERATOR_B2A)
    if not path.is_file():
        raise CycleGANError(
            f"no trained generator ({path.name})", path=path, fix="train first: xray-seg cyclegan train --run-dir ..."
        )
    return keras.saving.load_model(path, compile=False)


def translate_image(generator, image: np.ndarray) -> np.ndarray:
    """Translate one ``[H, W, 3]`` uint8 image at its own size; returns uint8 of the same shape."""
    h, w = image.shape[:2]
    pad_h, pad_w = -h % MULTIPLE, -w % MULTIPLE
    mode = "reflect" if min(h, w) > MULTIPLE else "edge"
    padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode).astype(np.float32)
    out = np.asarray(generator(padded[None], training=False))[0, :h, :w]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def translated_record(data: dict, image_name: str, png: bytes, height: int, width: int) -> dict:
    """The output JSON: the input's content with the new image reference and size."""
    record = copy.deepcopy(data)
    record["imagePath"] = image_name
    record["imageData"] = base64.b64encode(png).decode("ascii") if data.get("imageData") else None
    record["imageHeight"], record["imageWidth"] = int(height), int(width)
    return record


def translate_labelme_dir(
    run_dir: str | Path,
    labelme_dir: str | Path,
    out_dir: str | Path,
    *,
    direction: str = "a2b",
    force: bool = False,
    progress: bool = True,
) -> TranslateReport:
    """Translate every image of a Labelme folder; write a Labelme folder to ``out_dir``.

    A JSON or image that cannot be read is reported in the returned report (its file
    and the problem) and skipped; ``labels.txt`` is copied if the input has one.
    """
    import time

    from tqdm import tqdm

    labelme_dir = Path(labelme_dir)
    if not labelme_dir.is_dir():
        raise DatasetError("Labelme folder not found", path=labelme_dir, fix="give the folder of .json files")
    files = list_json_files(labelme_dir)
    if not files:
        raise DatasetError("no Labelme .json files here", path=labelme_dir, fix="give the folder of .json files")
    prepare_output_dir(out_dir, force=True, inputs=[labelme_dir, run_dir], dry_run=True)  # overlap, before loading
    generator = load_generator(run_dir, direction)
    try:
        out_dir = prepare_output_dir(out_dir, force=force, inputs=[labelme_dir, run_dir], owner="cyclegan")
    except OutputExistsError as exc:
        if "did not create" in exc.problem:
            raise
        raise OutputExistsError(
            "output folder already exists", path=out_dir, fix="choose another --out, or pass --force"
        ) from None
    if (labelme_dir / "labels.txt").is_file():
        shutil.copyfile(labelme_dir / "labels.txt", out_dir / "labels.txt")

    report = TranslateReport(out_dir)
    start = time.perf_counter()
    for json_path in tqdm(files, desc="translate", unit="img", disable=not progress):
        try:
            record = read_labelme(json_path, labelme_dir)
            data = load_labelme_json(json_path)
        except DatasetError as exc:
            report.failures.append((json_path, exc.message))
            continue
        translated = translate_image(generator, record.image)
        png = encode_png(translated)
        image_name = f"{json_path.stem}.png"
        write_bytes_atomic(out_dir / image_name, png)
        write_json_atomic(
            out_dir / json_path.name, translated_record(data, image_name, png, record.height, record.width)
        )
        report.translated.append(out_dir / json_path.name)
    report.seconds = time.perf_counter() - start
    return report
