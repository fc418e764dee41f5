"""Instance maps for VOC's ``SegmentationObject/`` (what labelme2voc's instance example writes).

``SegmentationObject/<stem>.png`` is a palette PNG like ``SegmentationClass``, but its
values number the objects: 0 background, 1..N the instances, 255 ignore. The evaluation
counts detected objects from it (docs/architecture.md, "conversion").

Which shapes form one instance (as ``labelme.utils.shapes_to_label``)
    Shapes with the same ``(label, group_id)`` are one instance; a shape without a
    ``group_id`` is an instance of its own. Ids are given in order of first appearance,
    and shapes are drawn in the record's draw order with the class map's rasteriser, so
    an instance's pixels are exactly the pixels of its class in ``SegmentationClass``.
    Labelme records carry labelme's ``group_id``; each COCO annotation and each PIXray
    object is one instance.

Where we differ from labelme's instance example, and why
    * ``__ignore__`` shapes (and COCO crowd regions) are 255 here, as in VOC2012's
      ``SegmentationObject`` (255 = void); labelme writes 0 there, which would mark an
      unlabelled region as certain background. They get no instance id.
    * shapes drawn as background (``--unknown background``, ``--others background``)
      are 0 and get no id either. So, unlike labelme, the ids of drawn objects have no
      gaps left by ignore shapes. Without ignore or background shapes the map equals
      labelme's ``shapes_to_label`` instance map (a test checks this).
    * an id whose shapes are completely overdrawn by later shapes keeps its number (no
      pixels carry it), as in labelme.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from xray_seg.conversion.annotation import Shape
from xray_seg.conversion.labelme import _draw_shape

#: Most instances a palette PNG can number (1..254; 255 is ignore).
MAX_INSTANCES = 254


def shapes_to_instances(
    shapes: Sequence[Shape], image_shape: Sequence[int], label_to_index: Mapping[str, int]
) -> np.ndarray:
    """Rasterise shapes into an instance map (see the module docstring).

    Args:
        shapes: :class:`~xray_seg.conversion.annotation.Shape` s in draw order.
        image_shape: ``(H, W, ...)`` of the image.
        label_to_index: class name -> index (0 background, -1 ignore), as for the class map.

    Returns:
        ``[H, W]`` int32: 0 background, 1..N instances, -1 ignore.

    Raises:
        ValueError: more than :data:`MAX_INSTANCES` instances.
        KeyError: a shape label missing from ``label_to_index``.
    """
    from PIL import Image, ImageDraw

    height, width = int(image_shape[0]), int(image_shape[1])
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    ids: dict[tuple, int] = {}
    for index, shape in enumerate(shapes):
        value = int(label_to_index[shape.label])
        if value < 0:
            ink = 255
        elif value == 0:
            ink = 0
        else:
            key = (shape.label, ("shape", index) if shape.group_id is None else ("group", shape.group_id))
            if key not in ids:
                if len(ids) == MAX_INSTANCES:
                    raise ValueError(
                        f"more than {MAX_INSTANCES} instances; a VOC palette PNG numbers at most {MAX_INSTANCES}"
                    )
                ids[key] = len(ids) + 1
            ink = ids[key]
        _draw_shape(canvas, draw, shape, ink)
    out = np.asarray(canvas).astype(np.int32)
    out[out == 255] = -1
    return out


__all__ = ["MAX_INSTANCES", "shapes_to_instances"]
