"""``xray-seg rank``: score every unlabelled scan, pick the ``n`` worth labelling next.

The scores and the diverse pick are in :mod:`xray_seg.inference.acquisition`; this module
runs them over a folder of any size and writes, into ``OUT``:

- ``ranking.csv``: every unlabelled scan, best first: ``rank``, ``stem``, ``score`` (of the
  strategy), ``uncertainty``, ``alarm_margin`` (the alarm score's distance to its
  threshold), ``alarm``, ``predicted_classes``, ``chosen`` (pick order, blank if not
  chosen), ``near`` (for a high-scoring scan left out: the chosen scan it nearly
  duplicates) and ``path``;
- ``to_label.txt``: the chosen scans' absolute paths, one a line, in pick order;
- ``to_label.png``: a contact sheet of the chosen scans with their prediction overlays
  (:func:`xray_seg.inference.overlays.screening_overlay`).

Streaming and resume: scans are scored one at a time; each scan's scalars and its 256-byte
thumbnail are appended to ``scores.partial.csv`` as soon as it is scored, and nothing else
of it is kept. The final pick holds only the scalars of every scan and the thumbnails of
the best ``POOL_FACTOR * n``, read back from that file. An interrupted run (Ctrl-C, a kill,
an unreadable scan) leaves the partial file; the same command again skips the scans already
scored, provided the model and its alarm rule are unchanged (``rank_state.json``). When the
outputs are written the partial file and the state go. ``--force`` starts again.

Unreadable scans are refused, not skipped: every scan's header is read before the first
scan is scored, and one that still fails to decode stops the run with one line naming it; the
scans scored so far stay in the partial file, so the rerun after removing the file continues.
"""

from __future__ import annotations

import base64
import csv
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.core.errors import ConfigError, DatasetError, OutputExistsError, XraySegError
from xray_seg.core.fileio import (
    has_marker,
    marker_owner,
    prepare_output_dir,
    read_lines,
    write_json_atomic,
    write_text_atomic,
)
from xray_seg.core.images import read_image_header, read_image_rgb
from xray_seg.core.layouts import VocLayout
from xray_seg.inference.acquisition import (
    DEFAULT_MIN_DISTANCE,
    DEFAULT_STRATEGY,
    STRATEGIES,
    THUMB_SIDE,
    UNCERTAIN_FRACTION,
    ScanScore,
    score_scan,
    select_diverse,
    strategy_score,
)
from xray_seg.inference.alarm_rule import decide, load_rule
from xray_seg.inference.geometry import geometry_for
from xray_seg.inference.loader import load_for_inference, model_folder
from xray_seg.inference.overlays import contact_sheet, screening_overlay
from xray_seg.inference.prediction_files import expand_inputs, unique_outputs
from xray_seg.inference.tta import predict_probabilities

RANKING_FILE = "ranking.csv"
TO_LABEL_FILE = "to_label.txt"
SHEET_FILE = "to_label.png"
PARTIAL_FILE = "scores.partial.csv"
STATE_FILE = "rank_state.json"
POOL_FACTOR = 20  # thumbnails kept for the diverse pick: the best POOL_FACTOR * n scans
_PARTIAL_COLUMNS = 6  # path, stem, uncertainty, margin, alarm, classes, then the thumbnail
RANKING_COLUMNS = [
    "rank",
    "stem",
    "score",
    "uncertainty",
    "alarm_margin",
    "alarm",
    "predicted_classes",
    "chosen",
    "near",
    "path",
]


@dataclass
class RankSettings:
    """What to pick: ``n`` scans by ``strategy`` (``seed`` for ``random``), near-duplicates
    within ``min_distance`` skipped (:func:`xray_seg.inference.acquisition.select_diverse`)."""

    n: int = 50
    strategy: str = DEFAULT_STRATEGY
    seed: int = 0
    min_distance: float = DEFAULT_MIN_DISTANCE

    def check(self) -> None:
        if self.n <= 0:
            raise ConfigError(f"--n {self.n} picks no scan", fix="give --n 1 or more, e.g. --n 50")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}", fix=f"choose one of {', '.join(STRATEGIES)}")
        if not 0 <= self.min_distance <= 1:
            raise ConfigError(
                f"--min-distance {self.min_distance} is outside 0..1", fix="give 0 (no diversity) up to 1"
            )


@dataclass
class RankReport:
    out_dir: Path
    scored: int = 0  # scans scored by this call (the rest came from the partial file)
    resumed: int = 0
    ranked: int = 0
    chosen: list = field(default_factory=list)  # stems in pick order
    near: dict = field(default_factory=dict)  # skipped stem -> the chosen stem it nearly duplicates


# ----------------------------------------------------------------------------- labelled scans


def labelled_stems(folder: str | Path) -> set[str]:
    """The stems already labelled in ``folder``: a VOC folder (``JPEGImages/`` and the split
    lists) or a Labelme folder (its ``*.json`` files, sub-folders included); else ConfigError."""
    folder = Path(folder)
    fix = "give the Labelme folder of your annotations or the VOC folder `xray-seg convert` wrote"
    if not folder.is_dir():
        raise ConfigError("--exclude folder not found (or not a folder)", path=folder, fix=fix)
    layout = VocLayout(folder)
    if layout.images_dir.is_dir() or layout.splits_dir.is_dir():
        stems = {p.stem for p in layout.images_dir.iterdir()} if layout.images_dir.is_dir() else set()
        for split in sorted(layout.splits_dir.glob("*.txt")) if layout.splits_dir.is_dir() else []:
            stems.update(read_lines(split))
        return stems
    jsons = sorted(p for p in folder.rglob("*.json") if p.is_file())
    if jsons and _is_labelme(jsons[0]):
        return {p.stem for p in jsons}
    raise ConfigError(
        "--exclude is neither a VOC folder (JPEGImages/, ImageSets/Segmentation/) nor a Labelme folder "
        "(*.json files with shapes)",
        path=folder,
        fix=fix,
    )


def _is_labelme(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("shapes"), list)


# ----------------------------------------------------------------------------- the partial file


def _encode_row(path: Path, stem: str, score: ScanScore) -> list[str]:
    thumb = base64.b64encode(np.ascontiguousarray(score.thumb, dtype=np.uint8).tobytes()).decode("ascii")
    return [
        str(path),
        stem,
        f"{score.uncertainty:.6f}",
        f"{score.margin:.6f}",
        str(int(score.alarm)),
        " ".join(score.classes),
        thumb,
    ]


def read_partial(path: Path):
    """Yield ``(path, stem, uncertainty, margin, alarm, classes, thumb_b64)`` of every whole row."""
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        for row in csv.reader(f):
            if len(row) == _PARTIAL_COLUMNS + 1:
                yield row[0], row[1], float(row[2]), float(row[3]), row[4] == "1", row[5], row[6]


def _trim_partial(path: Path) -> None:
    """Cut a last line a kill left half-written, so that appending starts on a fresh line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        block = min(size, 1 << 16)
        f.seek(size - block)
        tail = f.read(block)
        if not tail.endswith(b"\n"):
            cut = tail.rfind(b"\n")
            f.truncate(size - block + cut + 1 if cut >= 0 else 0)


# ----------------------------------------------------------------------------- the output folder


def open_output(out_dir: Path, fingerprint: dict, *, force: bool, inputs=(), may_lie_inside=(), dry_run=False) -> int:
    """Create ``out_dir``, or reopen an unfinished ranking with the same fingerprint; returns the
    number of scans already scored there (0 for a new folder)."""
    state = out_dir / STATE_FILE
    unfinished = (not force and has_marker(out_dir) and marker_owner(out_dir) == "rank" and state.is_file()) and not (
        out_dir / RANKING_FILE
    ).exists()
    prepare_output_dir(
        out_dir, force=force, resume=unfinished, inputs=inputs, may_lie_inside=may_lie_inside, dry_run=True
    )
    if unfinished and dry_run:
        return 0
    if unfinished:
        try:
            before = json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = None
        if before != fingerprint:
            raise OutputExistsError(
                "the output holds an unfinished ranking by another model, alarm rule or scoring",
                path=out_dir,
                fix="rerun with the same model, or pass --force to start again",
            )
        _trim_partial(out_dir / PARTIAL_FILE)
        return sum(1 for _ in read_partial(out_dir / PARTIAL_FILE))
    if not dry_run:
        prepare_output_dir(out_dir, force=force, inputs=inputs, may_lie_inside=may_lie_inside, owner="rank")
        write_json_atomic(state, fingerprint)
    return 0


def score_fingerprint(model_id: dict, rule=None) -> dict:
    """What must match for a rerun to continue: the model, its alarm rule and how scans are scored."""
    return {
        "model": model_id,
        "alarm_rule": rule.to_dict() if rule is not None else None,
        "uncertain_fraction": UNCERTAIN_FRACTION,
        "thumb_side": THUMB_SIDE,
    }


# ----------------------------------------------------------------------------- the run


def rank_paths(
    paths: list[Path],
    scorer: Callable[[Path], ScanScore],
    out_dir: str | Path,
    settings: RankSettings,
    *,
    fingerprint: dict,
    render: Callable[[Path], np.ndarray] | None = None,
    force: bool = False,
    inputs=(),
    may_lie_inside=(),
    progress: bool = True,
) -> RankReport:
    """Score ``paths`` with ``scorer`` (streamed into the partial file), pick, write the outputs.

    ``scorer(path)`` gives a :class:`ScanScore`; ``render(path)``, when given, the overlay
    of a chosen scan for the contact sheet. Stems must be unique (the caller checks).
    """
    settings.check()
    out_dir = Path(out_dir)
    paths = [Path(os.path.abspath(p)) for p in paths]  # a rerun from another folder finds its rows
    report = RankReport(out_dir)
    report.resumed = open_output(out_dir, fingerprint, force=force, inputs=inputs, may_lie_inside=may_lie_inside)
    partial = out_dir / PARTIAL_FILE
    report.scored = _score_missing(paths, scorer, partial, progress)
    wanted = {str(p) for p in paths}
    table = _table(partial, wanted, settings)
    report.ranked = len(table)
    pool = table[: POOL_FACTOR * settings.n]
    thumbs = _pool_thumbs(partial, {row[6] for row in pool})
    candidates = [(row[1], thumbs[row[6]]) for row in pool]
    report.chosen, report.near = select_diverse(candidates, settings.n, settings.min_distance)
    _write_outputs(out_dir, table, report, render, progress)
    partial.unlink(missing_ok=True)
    (out_dir / STATE_FILE).unlink(missing_ok=True)
    return report


def _score_missing(paths, scorer, partial: Path, progress: bool) -> int:
    """Append a row to ``partial`` for every path not in it yet; returns how many were scored."""
    from tqdm import tqdm

    done = {row[0] for row in read_partial(partial)}
    todo = [p for p in paths if str(p) not in done]
    count = 0
    with open(partial, "a", encoding="utf-8", errors="surrogateescape", newline="") as f:
        writer = csv.writer(f)
        bar = tqdm(todo, desc="rank", unit="scan", disable=not progress, initial=len(paths) - len(todo))
        bar.total = len(paths)
        for path in bar:
            try:
                score = scorer(path)
            except XraySegError as exc:  # the rows written so far stay: the rerun continues after them
                raise DatasetError(
                    f"cannot read this scan ({exc.problem.rstrip('.')})",
                    path=path,
                    fix=f"remove or re-export it, then run the same command again: the {len(paths) - len(todo) + count} "
                    "scans scored so far are kept",
                ) from None
            writer.writerow(_encode_row(path, path.stem, score))
            f.flush()
            count += 1
    return count


def _table(partial: Path, wanted: set[str], settings: RankSettings) -> list[tuple]:
    """``(score, stem, uncertainty, margin, alarm, classes, path)`` of the wanted scans, best first
    (ties: the stem, so the order never depends on the order of scoring)."""
    rows = []
    for path, stem, uncertainty, margin, alarm, classes, _thumb in read_partial(partial):
        if path in wanted:
            score = strategy_score(
                settings.strategy, stem=stem, seed=settings.seed, uncertainty=uncertainty, margin=margin
            )
            tie = uncertainty if settings.strategy == "screening" else 0.0
            rows.append((score, stem, uncertainty, margin, alarm, classes, path, tie))
    rows.sort(key=lambda r: (-r[0], -r[7], r[1]))
    return [r[:7] for r in rows]


def _pool_thumbs(partial: Path, paths: set[str]) -> dict:
    """``{path: thumbnail}`` of ``paths``, read back from the partial file."""
    side = THUMB_SIDE
    return {
        path: np.frombuffer(base64.b64decode(thumb), dtype=np.uint8).reshape(side, side)
        for path, _stem, *_rest, thumb in read_partial(partial)
        if path in paths
    }


def _write_outputs(out_dir: Path, table, report: RankReport, render, progress: bool) -> None:
    """``ranking.csv``, ``to_label.txt`` and the contact sheet (module docstring)."""
    import io

    from tqdm import tqdm

    order = {stem: i + 1 for i, stem in enumerate(report.chosen)}
    paths = {}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(RANKING_COLUMNS)
    for rank, (score, stem, uncertainty, margin, alarm, classes, path) in enumerate(table, 1):
        if stem in order:
            paths[stem] = (path, score)
        near = report.near.get(stem, "")
        cells = [rank, stem, f"{score:.6f}", f"{uncertainty:.6f}", f"{margin:.6f}", int(alarm), classes]
        writer.writerow([*cells, order.get(stem, ""), near, path])
    write_text_atomic(out_dir / RANKING_FILE, buf.getvalue())
    write_text_atomic(out_dir / TO_LABEL_FILE, "".join(f"{paths[s][0]}\n" for s in report.chosen))
    if render is not None:
        chosen = tqdm(report.chosen, desc="contact sheet", unit="scan", disable=not progress)
        cells = [(f"{order[s]}. {s} ({paths[s][1]:.3f})", render(Path(paths[s][0]))) for s in chosen]
        side = max(max(picture.shape[:2]) for _caption, picture in cells)
        contact_sheet(out_dir / SHEET_FILE, cells, thumb=min(256, side))  # small scans are not padded out


# ----------------------------------------------------------------------------- with a model


def _model_id(loaded) -> dict:
    """The loaded model's file (a SavedModel: its ``saved_model.pb``) by path, size and mtime."""
    source = Path(loaded.source)
    file = source / "saved_model.pb" if source.is_dir() else source
    info = file.stat()
    return {"source": os.path.abspath(source), "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


def check_headers(paths: list[Path], progress: bool = True) -> None:
    """Read every scan's header before any is scored; the first unreadable one is refused."""
    from tqdm import tqdm

    for path in tqdm(paths, desc="check", unit="scan", disable=not progress or len(paths) < 1000):
        try:
            read_image_header(path, "scan")
        except XraySegError as exc:
            raise DatasetError(
                f"cannot read this scan ({exc.problem.rstrip('.')})",
                path=path,
                fix="remove it from the scans, or re-export it as PNG or JPEG",
            ) from None


def model_functions(loaded, rule) -> tuple[Callable, Callable]:
    """``(scorer, render)`` for :func:`rank_paths` from a loaded model and its alarm rule."""

    geometry = geometry_for(loaded)

    def predicted(path: Path):
        image = read_image_rgb(path)
        probs = predict_probabilities(loaded.logits_fn, image, input_size=loaded.input_size, geometry=geometry)
        class_map = probs.argmax(axis=-1).astype(np.uint8)
        return image, probs, class_map, decide(class_map, probs, rule)

    def scorer(path: Path) -> ScanScore:
        image, probs, _map, decision = predicted(path)
        return score_scan(image, probs, decision, rule)

    def render(path: Path) -> np.ndarray:
        image, _probs, class_map, decision = predicted(path)
        return screening_overlay(image, class_map, decision["items"], loaded.class_names)

    return scorer, render


def plan_ranking(model, inputs, out_dir, *, exclude=(), force=False) -> tuple[list, list, dict]:
    """The cheap checks before any model loads: ``(paths, unlabelled paths, output guard)``.

    Refused here: missing inputs, two scans with one stem, an ``exclude`` folder that is
    neither Labelme nor VOC, nothing left to rank, an output folder that is, contains or
    lies inside an input, or that exists without ``force`` (an unfinished ranking is
    continued instead).
    """

    paths = unique_outputs(expand_inputs([str(i) for i in inputs]))
    labelled = set().union(*(labelled_stems(folder) for folder in exclude))
    todo = [p for p in paths if p.stem not in labelled]
    if not todo:
        raise DatasetError(
            f"every one of the {len(paths)} scans is already labelled in --exclude",
            path=", ".join(str(i) for i in inputs),
            fix="give scans that are not labelled yet",
        )
    guard = {
        "inputs": [*(Path(i) for i in inputs if Path(i).is_dir()), *paths, *map(Path, exclude)],
        "may_lie_inside": [model_folder(model)],
    }
    open_output(Path(out_dir), {}, force=force, dry_run=True, **guard)
    return paths, todo, guard


def rank_scans(
    model, inputs: list[str], out_dir: str | Path, settings: RankSettings, *, exclude=(), force=False, progress=True
) -> RankReport:
    """``xray-seg rank``: the scans of ``inputs`` not labelled in any ``exclude`` folder, ranked by
    ``model`` (a path or a loaded model), into ``out_dir`` (module docstring)."""

    settings.check()
    paths, todo, guard = plan_ranking(model, inputs, out_dir, exclude=exclude, force=force)
    check_headers(todo, progress)
    loaded = load_for_inference(model)
    rule = load_rule(model, loaded.class_names)
    scorer, render = model_functions(loaded, rule)
    report = rank_paths(
        todo,
        scorer,
        out_dir,
        settings,
        fingerprint=score_fingerprint(_model_id(loaded), rule),
        render=render,
        force=force,
        progress=progress,
        **guard,
    )
    print(
        f"ranked {report.ranked} unlabelled scans ({len(paths) - len(todo)} already labelled, "
        f"{report.resumed} scored before), {len(report.chosen)} chosen by {settings.strategy}; "
        f"outputs in {report.out_dir}"
    )
    return report
