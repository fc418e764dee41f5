"""``xray-seg data-stats``: per-class pixel frequency and image counts, and class weights."""

from __future__ import annotations

NAME = "data-stats"
HELP = "print per-class pixel frequency and image counts of a VOC split; optionally write class weights"
DESCRIPTION = """\
Print, for each class of a VOC split, its labelled pixels, share of all labelled pixels,
the number of images containing it and its median-frequency-balancing frequency
(pixels of c / pixels of the images containing c).

--weights-out writes median-frequency class weights (Eigen & Fergus 2015,
w_c = median_freq / freq_c; classes absent from the split get 0) as JSON for
`xray-seg train --set loss.class_weights=FILE.json`.

example:
  xray-seg data-stats data/demo/voc --split train --weights-out weights.json
"""


def add_arguments(parser) -> None:
    parser.add_argument("voc_dir", metavar="VOC_DIR", help="VOC folder written by `xray-seg convert`")
    parser.add_argument("--split", default="train", help="split to count (train, val or trainval; default train)")
    parser.add_argument("--weights-out", metavar="FILE.json", help="write median-frequency class weights here")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --weights-out file")


def run(args) -> int:
    from xray_seg.conversion.stats import compute_class_stats, format_table, median_frequency_weights, weights_document
    from xray_seg.core.fileio import prepare_output_file, write_json_atomic

    out = None
    if args.weights_out:  # --force never overwrites a dataset file, a folder or a non-regular file
        out = prepare_output_file(args.weights_out, force=args.force, dataset=args.voc_dir, what="--weights-out file")
    stats = compute_class_stats(args.voc_dir, args.split)
    weights = median_frequency_weights(stats)
    print(f"{args.voc_dir} [{args.split}]")
    print(format_table(stats, weights))
    if out is not None:
        write_json_atomic(out, weights_document(stats, args.split, weights))
        print(f"class weights written to {out}")
    return 0
