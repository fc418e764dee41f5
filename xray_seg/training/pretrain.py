"""Rebuild a shipped synthetic-pretrained preset: synthesise, convert, train, evaluate, write.

A preset NAME is ``xray_seg/presets/pretrained/NAME/{model.keras, manifest.json}`` (config
plus weights, as keras-hub's presets are): the run's ``best_model.keras`` (class names in its
metadata) and a manifest with its SHA-256 and size, the exact command that rebuilt it, the
data recipe, the held-out scanner looks, its val figures and the CPU and minutes it took.
``scripts/pretrain_preset.py`` is the command; :func:`pretrain` does the work:

1. **Data.** Synthetic bags of every scanner look except the held-out ones
   (:mod:`xray_seg.synthesis.scanners`; a look drawn per bag), in :data:`DEFAULT_PARTS`:
   easy bags (the demo's difficulty), bags of ``xray-seg synth``'s default difficulty, bags
   with high clutter and belt-shaped scans of the PIDray-like aspect mix, each part a
   disjoint range of image indices of one seed, so bag ``i`` is fixed by ``(seed, i)`` and its
   part. Threat-free bags are added to val only, so PD at PFA 5 % can be measured.
2. **Convert** to VOC (7:3 split of ``seed``, the threat-free bags in val).
3. **Train** CWF-DeepLabv3+ at width 0.25 with ``demo_cpu``'s recipe plus OHEM + dice and
   foreground crops (``hard_cpu``'s loss and crops, docs/training.md "Hard data"), for the
   mixed difficulty. Threat image projection (TIP) stays off: it would paste a threat cut
   from a bag of one look into a bag of another. Our choice; no paper covers pretraining.
4. **Evaluate** on val (mIoU, PD at PFA 5 %, and each subset: the looks, hidden, small).
5. **Write** the preset into a staging folder beside ``DEST/NAME`` and swap it into place;
   an existing preset is replaced only with ``force`` and only if it is a preset (a
   ``manifest.json`` of that name beside at most ``model.keras``).

The work (Labelme bags, VOC folder, run folder) stays under ``work``, which ``resume``
continues after an interruption.
"""

from __future__ import annotations

import datetime
import json
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from xray_seg.conversion.convert import ConvertConfig, convert
from xray_seg.core.config import load_config, save_config
from xray_seg.core.errors import ConfigError, OutputExistsError
from xray_seg.core.fileio import (
    current_umask,
    prepare_output_dir,
    swap_into_place,
    write_json_atomic,
    write_text_atomic,
)
from xray_seg.core.layouts import RunLayout
from xray_seg.core.model_metadata import read_model_metadata, write_model_metadata
from xray_seg.evaluation.timing import cpu_line, load_line
from xray_seg.inference.export_file import file_sha256
from xray_seg.inference.loader import load_keras_model
from xray_seg.synthesis.scanners import LOOK_NAMES
from xray_seg.synthesis.scene import CLASS_NAMES, LABELS_FILE, SynthConfig, write_contact_sheet, write_samples
from xray_seg.training.config import TrainConfig
from xray_seg.training.config_checks import validate_train_config
from xray_seg.training.experiments import measure, open_out, train_once

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets" / "pretrained"
MODEL_FILE = "model.keras"
MANIFEST_FILE = "manifest.json"
DEFAULT_NAME = "synthetic_cwf_w025"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class DataPart:
    """One kind of bag in the pretraining data (``SynthConfig`` difficulty and shape fields)."""

    name: str
    share: float  # fraction of the threat bags
    threat_prob: float = 0.85
    clutter: str = "medium"
    hide_prob: float = 1 / 3
    small_threat_prob: float = 0.125
    aspect_mix: str = ""


DEFAULT_PARTS = (
    DataPart("easy", 0.30, threat_prob=1.0, clutter="low", hide_prob=0.0, small_threat_prob=0.0),
    DataPart("default", 0.40),
    DataPart("cluttered", 0.15, clutter="high"),
    DataPart("belt", 0.15, aspect_mix="pidray"),
)


@dataclass
class PretrainRecipe:
    """What a preset is rebuilt from (module docstring); ``quick`` is a one-minute smoke run."""

    name: str = DEFAULT_NAME
    held_out: tuple = ("dual_energy_b",)
    bags: int = 660
    clean_val_bags: int = 60
    size: int = 256
    seed: int = 0
    epochs: int = 40
    width: float = 0.25
    base_preset: str = "demo_cpu"
    overrides: tuple = (
        "loss.type=ohem+dice",
        "loss.weights=[1.0,1.0]",
        "data.augment.foreground_crop_prob=0.5",
    )
    parts: tuple = DEFAULT_PARTS
    extra: list = field(default_factory=list)  # further --set items

    @classmethod
    def quick(cls, **changes) -> PretrainRecipe:
        """A smoke run of the whole path in about a minute: 24 + 4 bags of 64 px, 2 epochs."""
        return cls(**{"bags": 24, "clean_val_bags": 4, "size": 64, "epochs": 2, **changes})

    def looks(self) -> tuple[str, ...]:
        """The scanner looks pretrained on: every look but the held-out ones."""
        return tuple(look for look in LOOK_NAMES if look not in self.held_out)

    def counts(self) -> list[tuple[DataPart, range]]:
        """Each part and its image indices (disjoint, in part order; the last part takes the rest)."""
        ranges, start = [], 0
        for k, part in enumerate(self.parts):
            num = self.bags - start if k == len(self.parts) - 1 else round(self.bags * part.share)
            ranges.append((part, range(start, start + num)))
            start += num
        return ranges

    def validate(self) -> PretrainRecipe:

        if not _NAME.match(self.name):
            raise ConfigError(
                f"preset name {self.name!r} is not a lower-case name of letters, digits and _",
                fix="use e.g. --name synthetic_cwf_w025",
            )
        unknown = [look for look in self.held_out if look not in LOOK_NAMES]
        if unknown or not self.looks():
            raise ConfigError(
                f"--hold-out {','.join(self.held_out)} "
                + (f"names no look ({', '.join(unknown)})" if unknown else "leaves no look to pretrain on"),
                fix=f"hold out some of {', '.join(LOOK_NAMES)}, e.g. --hold-out dual_energy_b",
            )
        if self.bags < 4 * len(self.parts) or self.clean_val_bags < 0 or self.epochs < 1:
            raise ConfigError(
                f"--bags {self.bags} / --clean-val-bags {self.clean_val_bags} / --epochs {self.epochs} out of range",
                fix=f"use --bags {4 * len(self.parts)} or more, --clean-val-bags 0 or more, --epochs 1 or more",
            )
        return self

    def data_recipe(self) -> dict:
        """The manifest's ``data_recipe``: looks, counts, difficulty, shape, seed."""
        return {
            "scanner_looks": list(self.looks()),
            "held_out_looks": list(self.held_out),
            "look_per_bag": "drawn from the looks by a generator seeded (seed, index, 3)",
            "size": self.size,
            "seed": self.seed,
            "parts": [{**asdict(part), "num": len(indices)} for part, indices in self.counts()],
            "threat_bags": self.bags,
            "clean_val_bags": self.clean_val_bags,
            "split": "7:3 train/val by `xray-seg convert` (seed), the threat-free bags in val only",
        }

    def train_overrides(self, voc_dir: Path) -> list[str]:
        return [
            f"data.voc_dir={voc_dir}",
            f"seed={self.seed}",
            f"model.width={self.width}",
            f"epochs={self.epochs}",
            f"data.image_size=[{self.size},{self.size}]",
            *self.overrides,
            *self.extra,
        ]


# ----------------------------------------------------------------------------- steps
def synthesise_bags(recipe: PretrainRecipe, labelme_dir: Path, *, progress: bool = True) -> list[str]:
    """The Labelme folder of ``recipe`` (module docstring, step 1); returns the threat-free val stems."""
    prepare_output_dir(labelme_dir, force=True, owner="synth")
    write_text_atomic(labelme_dir / LABELS_FILE, "\n".join(["__ignore__", "_background_", *CLASS_NAMES]) + "\n")
    scanner = ",".join(recipe.looks())
    base = SynthConfig(size=recipe.size, seed=recipe.seed, scanner=scanner)
    parts = [(part, indices) for part, indices in recipe.counts()]
    clean_start = recipe.bags
    clean = DataPart("clean_val", 0.0, threat_prob=0.0)
    parts.append((clean, range(clean_start, clean_start + recipe.clean_val_bags)))
    paths = []
    for part, indices in parts:
        if not indices:
            continue
        fields = {k: v for k, v in asdict(part).items() if k not in ("name", "share")}
        config = replace(base, num=len(indices), **fields).validate()
        save_config(config, labelme_dir / f"synth_config_{part.name}.yaml")
        print(f"  {part.name}: {len(indices)} bags (images {indices.start}-{indices.stop - 1})", flush=True)
        paths.append(write_samples(labelme_dir, config, indices, progress=progress))
    write_contact_sheet(labelme_dir, [p[0] for p in paths if p] + [p[-1] for p in paths if p])
    return [f"xray_{i:05d}" for i in range(clean_start, clean_start + recipe.clean_val_bags)]


def convert_bags(recipe: PretrainRecipe, labelme_dir: Path, voc_dir: Path, clean_stems: list[str]) -> Path:
    """Step 2: the VOC folder (7:3 split of the seed; the threat-free bags in val)."""
    config = ConvertConfig(
        labels=str(labelme_dir / "labels.txt"), seed=recipe.seed, val_stems=clean_stems or None, force=True
    )
    print(convert(labelme_dir, voc_dir, config).summary(), flush=True)
    return voc_dir


def train_config(recipe: PretrainRecipe, voc_dir: Path):
    """Step 3's resolved and checked :class:`~xray_seg.training.config.TrainConfig`."""
    cfg = load_config(TrainConfig, recipe.base_preset, recipe.train_overrides(voc_dir))
    validate_train_config(cfg)
    return cfg


def check_destination(dest: Path, force: bool) -> None:
    """Refuse an existing ``dest`` unless ``force`` and it is a preset of that name (module docstring)."""
    if not dest.exists():
        return
    manifest = dest / MANIFEST_FILE
    ours = (
        dest.is_dir()
        and not dest.is_symlink()
        and manifest.is_file()
        and {p.name for p in dest.iterdir()} <= {MODEL_FILE, MANIFEST_FILE}
        and _manifest_name(manifest) == dest.name
    )
    if not force:
        raise OutputExistsError(
            "a preset of this name exists already",
            path=dest,
            fix="choose another --name, or pass --force to rebuild it",
        )
    if not ours:
        raise OutputExistsError(
            f"is not a preset folder (only {MODEL_FILE} and a {MANIFEST_FILE} naming it), so --force will not replace it",
            path=dest,
            fix="choose another --name or --dest, or move the folder yourself",
        )


def _manifest_name(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        return None


def slim_copy(model_file: Path, target: Path) -> None:
    """``model_file`` saved again at ``target`` without the optimizer state (a run's
    ``best_model.keras`` carries Adam's two moments, three times the weights), its
    ``xray_seg.json`` metadata (class names) kept."""
    model = load_keras_model(model_file)  # compile=False: no optimizer
    model.save(target)
    write_model_metadata(target, read_model_metadata(model_file))


def write_preset(dest: Path, model_file: Path, manifest: dict) -> Path:
    """``dest/{model.keras, manifest.json}`` (``manifest`` gets the file's ``sha256`` and
    ``bytes``), written in a staging folder beside ``dest`` and swapped into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        staging.chmod(0o777 & ~current_umask())  # mkdtemp makes it 0700; a folder honours the umask
        slim_copy(model_file, staging / MODEL_FILE)
        full = {**manifest, "file": MODEL_FILE}
        full["sha256"] = file_sha256(staging / MODEL_FILE)
        full["bytes"] = (staging / MODEL_FILE).stat().st_size
        write_json_atomic(staging / MANIFEST_FILE, full)
        swap_into_place(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def build_manifest(recipe: PretrainRecipe, cfg, figures: dict, *, command: str, minutes: dict) -> dict:
    """The manifest (docs/training.md, "Start from a model"), less ``sha256`` and ``bytes``."""
    looks = ", ".join(recipe.looks())
    return {
        "name": recipe.name,
        "description": (
            f"CWF-DeepLabv3+ width {recipe.width:g}, {recipe.size} px, trained from scratch on {recipe.bags} synthetic "
            f"bags of the scanner looks {looks} (held out: {', '.join(recipe.held_out) or 'none'}), mixed difficulty "
            "and belt shapes"
        ),
        "model": cfg.model.name,
        "width": recipe.width,
        "image_size": [recipe.size, recipe.size],
        "class_names": figures["class_names"],
        "file": MODEL_FILE,
        "command": command,
        "data_recipe": recipe.data_recipe(),
        "training": {
            "base_preset": recipe.base_preset,
            "overrides": recipe.train_overrides(Path("VOC"))[1:],
            "best_epoch": figures.get("best_epoch"),
        },
        "val": {k: figures[k] for k in ("miou", "mpa", "pd_at_pfa5", "iou", "val_images", "subsets")},
        "trained": {
            "cpu": cpu_line(),
            "minutes": round(minutes["total"], 1),  # of this session (a --resume counts its own)
            "train_minutes": None if minutes["train"] is None else round(minutes["train"], 1),
            "date": datetime.date.today().isoformat(),
            "load_at_end": load_line(),  # how shared the cores were (the minutes depend on it)
        },
        "held_out_looks": list(recipe.held_out),
    }


# ----------------------------------------------------------------------------- the command
def pretrain(
    recipe: PretrainRecipe,
    *,
    work: Path,
    dest_root: Path = PRESETS_DIR,
    command: str,
    force: bool = False,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Steps 1-5 of the module docstring; returns the preset folder ``dest_root/NAME``."""
    recipe.validate()
    dest = Path(dest_root) / recipe.name
    check_destination(dest, force)  # before any slow work
    settings = {"recipe": json.loads(json.dumps(asdict(recipe)))}
    work = open_out(Path(work), settings, resume=resume, force=force, owner="pretrain")
    started = time.perf_counter()
    voc_dir = _data(recipe, work, progress)
    cfg = train_config(recipe, voc_dir)
    _stage(f"3/5 train {cfg.model.name} width {recipe.width:g} for {recipe.epochs} epochs")
    trained = train_once(cfg, work / "run", verbose=1 if progress else 0)
    _stage("4/5 evaluate on val")
    figures = measure(work / "run", voc_dir, progress=progress)
    figures.update(_run_facts(work / "run"))
    seconds = trained["train_seconds"]
    minutes = {"total": (time.perf_counter() - started) / 60, "train": None if seconds is None else seconds / 60}
    manifest = build_manifest(recipe, cfg, figures, command=command, minutes=minutes)
    _stage(f"5/5 write the preset {dest}")
    write_preset(dest, RunLayout(work / "run").best_model, manifest)
    pd5 = figures["pd_at_pfa5"]
    print(
        f"preset {recipe.name}: val mIoU {figures['miou']:.4f}, PD at PFA 5 % "
        + ("n/a" if pd5 is None else f"{pd5:.4f}")
        + f"; {minutes['total']:.1f} min this session"
        + ("" if seconds is None else f" ({seconds / 60:.1f} training)")
        + f"\n  {dest / MODEL_FILE}\n"
        f"  {dest / MANIFEST_FILE}",
        flush=True,
    )
    return dest


def _data(recipe: PretrainRecipe, work: Path, progress: bool) -> Path:
    """Steps 1-2, skipped when ``work`` holds the same recipe's converted data already."""
    stamp, wanted = work / "data.json", recipe.data_recipe()
    voc_dir = work / "voc"
    if stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == wanted:
        print(f"data: {voc_dir} (made earlier with the same recipe)", flush=True)
        return voc_dir
    _stage(
        f"1/5 synthesise {recipe.bags} + {recipe.clean_val_bags} threat-free bags, looks {', '.join(recipe.looks())}"
    )
    clean = synthesise_bags(recipe, work / "labelme", progress=progress)
    _stage("2/5 convert Labelme -> VOC")
    convert_bags(recipe, work / "labelme", voc_dir, clean)
    write_json_atomic(stamp, wanted)
    return voc_dir


def _run_facts(run_dir: Path) -> dict:
    """``class_names`` (from ``best_model.keras``'s metadata) and ``best_epoch`` of a finished run."""
    layout = RunLayout(run_dir)
    state = json.loads(layout.state_file.read_text(encoding="utf-8")) if layout.state_file.is_file() else {}
    meta = read_model_metadata(layout.best_model) or {}
    return {"class_names": meta.get("class_names"), "best_epoch": state.get("best_epoch")}


def _stage(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)
