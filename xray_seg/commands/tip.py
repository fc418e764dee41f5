"""``xray-seg tip``: write threat-image-projection composites to a new VOC folder."""

from __future__ import annotations

NAME = "tip"
HELP = "project threats from labelled scans into bags and write the composites as a new VOC folder"
DESCRIPTION = """\
Threat image projection (TIP, see xray_seg/pipeline/tip.py): cut every labelled threat
out of LIBRARY_VOC (its --library-split), then project 1..--max-threats of them into each
bag with the Beer-Lambert rule (I_out = I_bag * T_threat), at a random pose, scale and
position inside the bag. Bags are the scans of a VOC folder (--bags VOC_DIR, its --split;
default LIBRARY_VOC itself) or a folder of unlabelled clean images (--bags IMAGE_DIR: all
background). The output is a new VOC folder (PNG images, palette masks, class_names.txt,
ImageSets/Segmentation/train.txt) written to a temporary folder and renamed into place,
so an interrupted run leaves nothing behind. Inputs are never modified; an existing
--out is refused unless --force. The same seed gives the same composites.

example:
  xray-seg tip data/demo/voc --bags data/clean_bags --out data/tip_voc --copies 2 --seed 0
"""


def add_arguments(parser) -> None:
    parser.add_argument("library", metavar="LIBRARY_VOC", help="VOC folder with labelled threats")
    parser.add_argument("--out", required=True, help="new VOC folder to write")
    parser.add_argument(
        "--bags", default="", help="VOC folder or folder of clean images to project into (default LIBRARY_VOC)"
    )
    parser.add_argument("--split", default="train", help="split of a VOC --bags folder (default train)")
    parser.add_argument(
        "--library-split", default="train", help="split of LIBRARY_VOC to cut threats from (default train)"
    )
    parser.add_argument("--copies", type=int, default=1, help="composites per bag (default 1)")
    parser.add_argument("--max-threats", type=int, default=2, help="threats per composite, 1..N uniform (default 2)")
    parser.add_argument(
        "--scale", type=float, nargs=2, default=(0.8, 1.25), metavar=("LOW", "HIGH"), help="threat scale range"
    )
    parser.add_argument(
        "--air", choices=("white", "estimate"), default="white", help="air intensity of the library scans"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out (never an input)")


def run(args) -> int:
    from xray_seg.pipeline.tip_dataset import write_tip_dataset

    written, threats = write_tip_dataset(
        args.library,
        args.out,
        bags=args.bags,
        split=args.split,
        library_split=args.library_split,
        copies=args.copies,
        max_threats=args.max_threats,
        scale=args.scale,
        air=args.air,
        seed=args.seed,
        force=args.force,
    )
    print(f"wrote {written} composites ({threats} threats in the library) to {args.out}")
    return 0
