"""``python -m xray_seg.serving.serve_once SAVEDMODEL SCAN.png``: one scan through ``serving_default``
with plain TensorFlow, as a station without xray-seg runs it (``tf.saved_model.load``, the PNG
decoded by ``tf.io.decode_png``, the whole scan ``[1, H, W, 3]`` in one call). The memory
benchmark (:mod:`xray_seg.serving.bench_memory`) runs it in a fresh process to read its peak RSS.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    import tensorflow as tf

    folder, scan = argv
    serve = tf.saved_model.load(folder).signatures["serving_default"]
    image = tf.io.decode_png(tf.io.read_file(scan), channels=3)[None]
    out = serve(images=image)
    counts = out["class_pixel_counts"].numpy()[0].tolist()
    line = f"class_map {tuple(out['class_map'].shape)}, pixels per class {counts}, alarm {bool(out['alarm'][0])}"
    print(line, file=sys.stderr)  # the benchmark keeps stderr in its log
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
