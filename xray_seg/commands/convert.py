"""``xray-seg convert``: Labelme folder, COCO JSON or PIXray folder -> VOC folder (see :mod:`xray_seg.conversion.convert`)."""

from __future__ import annotations

NAME = "convert"
HELP = "convert Labelme, COCO (PIDray) or PIXray annotations into a VOC dataset (labelme2voc-compatible, validated, parallel)"
DESCRIPTION = """Convert a folder of Labelme JSON files (labelme 3.x-7.x) into the VOC layout that
labelme2voc.py writes: JPEGImages/, SegmentationClass/ (VOC palette PNGs, 255 = ignore),
optional SegmentationClassNpy/ (--npy) and SegmentationClassVisualization/ (--vis),
class_names.txt and ImageSets/Segmentation/{train,val,trainval}.txt (seeded 7:3 split).

  xray-seg convert data/labelme data/voc --labels labels.txt
  xray-seg convert --from coco pidray/annotations/xray_train.json data/voc \
      --images pidray/train --classes gun,knife,wrench,pliers,scissors
  xray-seg convert --from pixray pixray/annotations data/voc --images pixray/images --labels labels.txt

--from coco reads one COCO instance JSON (PIDray): polygon and RLE segmentations, drawn
largest area first; iscrowd regions become ignore (255). --from pixray reads one JSON per
image with objects: [{label, polygon}]. Categories and labels map to --labels by name;
--classes a,b,c keeps only those classes (no labels file needed) and draws the others as
background (or ignore with --others ignore). SegmentationObject/ holds instance ids
(0 background, 1..N, 255 ignore) unless --no-object. See docs/importers.md.

Images: --image-format png is the default because it is lossless: X-ray images carry thin
wires and edges that JPEG re-encoding blurs. jpeg gives labelme2voc's exact output (lossy);
copy keeps the original bytes (e.g. 16-bit PNG) when the pipeline decodes them to the same
pixels, else writes PNG and warns. 16-bit images are scaled by keeping the high byte
(65535 -> 255, the same for every image); grayscale is replicated to 3 channels; alpha is
composited on white (air).

Bad files (corrupt JSON, missing image, imagePath outside the input folder, size different
from imageHeight/imageWidth, polygon with < 3 points, duplicate stems or images) fail one by
one with a message naming the file; the others are converted. Points outside the image are
clipped to it, with a warning. Unknown labels stop the run before anything is written
(--unknown error) unless --unknown skip or background is given.

Exit code: 0 all converted; 1 some files failed (see the summary and convert_report.txt);
2 whole-run error (no .json files, unknown labels, output exists, bad option).
An existing output is refused unless --force (start again; only a folder xray-seg made)
or --resume (convert only the files whose output is missing or whose JSON or image changed
since; earlier train/val assignments are kept, new files are split, --resplit redoes it). Inputs are never modified; outputs are written atomically.
"""


def _add_split_arguments(parser):
    """The train/val split: ratio, seed and a list of stems always in val."""
    parser.add_argument(
        "--val-ratio", type=float, default=0.3, help="fraction of images in val (default 0.3, i.e. 7:3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/val split (default 0)")
    parser.add_argument(
        "--val-list",
        default="",
        metavar="FILE",
        help="stems (one per line, as in val.txt) that always go to val, e.g. clean bags kept to measure "
        "false alarms; the other stems are split by --val-ratio exactly as without the list",
    )


def add_arguments(parser):
    parser.add_argument(
        "labelme_dir",
        metavar="input",
        help="folder with the Labelme (or PIXray) .json files and their images; for --from coco the COCO .json file",
    )
    parser.add_argument("voc_dir", help="output VOC folder")
    parser.add_argument(
        "--from",
        dest="source",
        choices=["labelme", "coco", "pixray"],
        default="labelme",
        help="annotation format of the input (default labelme)",
    )
    parser.add_argument("--labels", help="labels file: __ignore__, _background_, then one class a line")
    parser.add_argument(
        "--classes", help="comma-separated classes to keep, e.g. gun,knife,wrench,pliers,scissors (instead of --labels)"
    )
    parser.add_argument(
        "--others",
        choices=["background", "ignore"],
        default="background",
        help="with --classes: draw every other class as background (default) or ignore (255)",
    )
    parser.add_argument(
        "--images",
        help="--from coco/pixray: folder the image file names are relative to (default: the JSON's folder); "
        "Labelme: a second folder imagePath may lead into (the scans of `predict --labelme` pre-annotations)",
    )
    parser.add_argument("--no-object", dest="objects", action="store_false", help="do not write SegmentationObject/")
    parser.add_argument(
        "--image-format",
        choices=["png", "jpeg", "copy"],
        default="png",
        help="JPEGImages format: png (default, lossless), jpeg (labelme2voc-identical, lossy), "
        "copy (original bytes where possible)",
    )
    _add_split_arguments(parser)
    parser.add_argument(
        "--unknown",
        choices=["error", "skip", "background"],
        default="error",
        help="a label not in --labels: error (default; list all, convert nothing), skip the shape, or draw as background",
    )
    parser.add_argument("--workers", type=int, default=0, help="worker processes (default 0 = all CPU cores)")
    parser.add_argument("--npy", action="store_true", help="also write SegmentationClassNpy/*.npy (int32, -1 = ignore)")
    parser.add_argument("--vis", action="store_true", help="also write SegmentationClassVisualization/*.jpg overlays")
    parser.add_argument("--recursive", action="store_true", help="also read .json files in sub-folders")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--force", action="store_true", help="delete an existing output folder and start again")
    group.add_argument("--resume", action="store_true", help="keep the output folder; convert only missing outputs")
    parser.add_argument(
        "--resplit",
        action="store_true",
        help="with --resume: redo the whole train/val split (default: keep every earlier assignment)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _read_val_list(path: str) -> list[str]:
    from xray_seg.core.errors import ConfigError
    from xray_seg.core.fileio import read_lines

    try:
        return read_lines(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the --val-list file ({exc.__class__.__name__}: {exc})",
            path=path,
            fix="give a text file with one image stem per line, as in ImageSets/Segmentation/val.txt",
        ) from None


def run(args) -> int:
    from xray_seg.conversion.convert import ConvertConfig, convert
    from xray_seg.core.errors import ConfigError

    if bool(args.labels) == bool(args.classes):
        raise ConfigError(
            "give --labels FILE or --classes a,b,c (exactly one)",
            fix="e.g. --labels labels.txt, or --classes gun,knife,wrench,pliers,scissors",
        )
    config = ConvertConfig(
        labels=args.labels or "labels.txt",
        source=args.source,
        images=args.images,
        classes=[c for c in args.classes.split(",")] if args.classes else None,
        others=args.others,
        objects=args.objects,
        image_format=args.image_format,
        val_ratio=args.val_ratio,
        seed=args.seed,
        unknown=args.unknown,
        workers=args.workers,
        npy=args.npy,
        vis=args.vis,
        force=args.force,
        resume=args.resume,
        recursive=args.recursive,
        resplit=args.resplit,
        val_stems=_read_val_list(args.val_list) if args.val_list else None,
    )
    report = convert(args.labelme_dir, args.voc_dir, config, progress=False if args.quiet else None)
    print(report.summary())
    return report.exit_code
