"""The public inference object: ``Segmenter.load(path).predict(image)``.

One loaded model - a run folder, a ``.keras`` file or an exported SavedModel, through
the one loader (:mod:`xray_seg.inference.loader`) - and what a script does with it:
predict one image (:meth:`Segmenter.predict`, with paper-style multi-scale/flip TTA and
sliding windows from :mod:`xray_seg.inference.tta`), predict files as ``xray-seg predict``
does, evaluate on a VOC split (paper 1 eqs. 4-7, :mod:`xray_seg.evaluation.evaluator`),
benchmark, and export (:mod:`xray_seg.serving.exporter`). The shape follows keras-hub's
``from_preset(...).predict(...)`` and mmsegmentation's ``init_model``/``inference_model``;
``docs/python_api.md`` and ``docs/architecture.md`` describe where it sits.

It sits on the app floor, above every stage it uses. Evaluation, benchmarking and export
are imported inside the methods that use them: they bring Keras and TensorFlow, and
``xray_seg.Segmenter`` alone must not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.inference.alarm_rule import decide, load_rule
from xray_seg.inference.geometry import geometry_for
from xray_seg.inference.loader import LoadedModel, load_for_inference, read_names_file
from xray_seg.inference.prediction_files import expand_inputs, predict_images
from xray_seg.inference.strips import class_map_of
from xray_seg.inference.tta import check_image_array, predict_probabilities
from xray_seg.inference.tta_options import tta_options


@dataclass
class Prediction:
    """What :meth:`Segmenter.predict` returns for one image of ``H x W`` pixels.

    Attributes:
        class_map: ``[H, W]`` uint8, the class index of each pixel (0 = background).
        probabilities: ``[H, W, K]`` float32 softmax probabilities.
        items: the prohibited items found, largest first, as ``xray-seg predict`` writes
            them: ``class``, ``class_index``, ``area`` (pixels), ``confidence``, ``bbox``
            ``[x, y, w, h]`` and ``alarm`` (whether this item passes its class's thresholds).
        alarm: whether the bag alarms under the model's stored alarm rule
            (:func:`xray_seg.inference.alarm_rule.decide`; the documented defaults when the
            model was never calibrated).
        alarm_classes: the classes that alarmed, in class order.
    """

    class_map: np.ndarray
    probabilities: np.ndarray
    items: list
    alarm: bool = False
    alarm_classes: list = field(default_factory=list)


class Segmenter:
    """A trained segmentation model ready to use: predict, evaluate, benchmark, export.

    Load it with :meth:`load` from a run folder (``RUN/best_model.keras``), a ``.keras``
    file or an exported SavedModel folder. The class names come with the model (the
    ``.keras`` file's ``xray_seg.json`` entry, ``class_names.txt`` beside it, or the
    SavedModel's ``export.json``/``model_info``).

    Args:
        loaded: a :class:`~xray_seg.inference.loader.LoadedModel` (normally from :meth:`load`).

    Example:
        >>> seg = Segmenter.load("runs/demo/run")              # doctest: +SKIP
        >>> pred = seg.predict("scan.png", tta="flip")          # doctest: +SKIP
        >>> pred.class_map.shape, [it["class"] for it in pred.items]  # doctest: +SKIP
        ((512, 512), ['gun', 'knife'])
        >>> seg.evaluate("runs/demo/voc", split="val").scores["miou"]  # doctest: +SKIP
        >>> seg.export("runs/demo/export", formats="savedmodel")  # doctest: +SKIP
    """

    def __init__(self, loaded: LoadedModel):
        self._loaded = loaded

    @classmethod
    def load(cls, path, *, class_names=None, engine: str | None = None, variant: str | None = None) -> Segmenter:
        """Load a run folder, a ``.keras`` file or a SavedModel folder.

        ``class_names`` (a list, a ``class_names.txt`` or a VOC folder) is used only for a
        ``.keras`` model that carries no names of its own. ``engine`` (one of
        :data:`xray_seg.serving.engines.ENGINES`) runs an export folder's model in that
        runtime instead (``variant``: which TFLite/ONNX file; docs/station.md, "Engines").
        """
        if engine is not None:
            from xray_seg.serving.engines import load_engine_model

            return cls(load_engine_model(path, engine, variant=variant))
        if isinstance(class_names, (str, Path)):
            class_names = read_names_file(class_names)
        return cls(load_for_inference(path, class_names))

    @classmethod
    def from_preset(cls, name: str) -> Segmenter:
        """The pretrained preset ``name`` (``"preset:NAME"`` too; `xray-seg models --presets` lists
        them), in keras-hub's sense of config plus weights. Its model file is checked against the
        manifest's size and SHA-256 before it loads; an unknown name is refused with the list."""
        from xray_seg.core.pretrained_presets import find_preset, verified_model_file

        preset = find_preset(name)
        return cls(load_for_inference(verified_model_file(preset), preset.class_names))

    @classmethod
    def load_for_export(cls, path, *, class_names=None) -> Segmenter:
        """Load a run folder or ``.keras`` file with the export checks (``class_names``: a file)."""
        from xray_seg.serving.export_source import load_export_model

        return cls(load_export_model(path, class_names_file=class_names))

    # ------------------------------------------------------------------ what the model is
    @property
    def class_names(self) -> list[str]:
        """Class names in output order; index 0 is the background."""
        return list(self._loaded.class_names)

    @property
    def palette(self) -> np.ndarray:
        """``[K, 3]`` uint8 VOC colour of each class (as in the masks ``predict`` writes)."""
        return np.asarray(self._loaded.palette, dtype=np.uint8)

    @property
    def input_size(self) -> tuple[int, int] | None:
        """The ``(H, W)`` the model was built or trained for, when known."""
        return self._loaded.input_size or self._loaded.trained_size

    @property
    def model_name(self) -> str:
        """The registry name of the model (e.g. ``cwf_deeplabv3plus``)."""
        return self._loaded.name

    @property
    def source(self) -> Path:
        """The ``.keras`` file or SavedModel folder that was loaded."""
        return Path(self._loaded.source)

    @property
    def keras_model(self):
        """The Keras model (None for a SavedModel)."""
        return self._loaded.keras_model

    def __repr__(self) -> str:
        return f"Segmenter({self.model_name!r}, classes={self.class_names}, source={str(self.source)!r})"

    # ------------------------------------------------------------------ using it
    def predict(self, image_or_path, tta=None, window=None, *, stride=None, min_area: int = 50) -> Prediction:
        """Segment one image: an ``[H, W, 3]`` (or grey ``[H, W]``) array in 0..255, or an image file.

        Args:
            image_or_path: the image, or the path of a PNG/JPEG/... file (decoded as the
                converter does: 16-bit, alpha and grey handled). An array is checked by
                :func:`~xray_seg.inference.tta.check_image_array`: 0..1 floats, 16-bit values,
                NaN, empty or wrongly shaped arrays are refused with the fix (DatasetError).
            tta: None, a ``TTAOptions`` or a spec string such as ``"scales=0.75,1,1.25 flip"``.
            window: sliding-window tile (int, ``(h, w)`` or ``"512x1024"``) for large scans.
            stride: sliding-window step (default 2/3 of the window).
            min_area: smallest item listed in ``items``, in pixels.
        """
        from xray_seg.core.images import read_image_rgb

        if isinstance(image_or_path, (str, Path)):
            image = read_image_rgb(Path(image_or_path))
        else:
            image = check_image_array(image_or_path)
        options = tta_options(tta, window, stride)
        loaded = self._loaded
        probs = predict_probabilities(
            loaded.logits_fn, image, input_size=loaded.input_size, geometry=geometry_for(loaded), **options.as_kwargs()
        )
        probs = np.asarray(probs, dtype=np.float32)
        class_map = class_map_of(probs)
        decision = decide(class_map, probs, load_rule(loaded, loaded.class_names), min_area=min_area)
        return Prediction(class_map, probs, decision["items"], decision["alarm"], decision["alarm_classes"])

    def predict_files(
        self, inputs, out_dir, *, min_area: int = 50, tta=None, window=None, force: bool = False, progress: bool = True
    ):
        """``xray-seg predict``: masks, overlays and item JSON for files, folders or globs.

        Returns the :class:`~xray_seg.inference.prediction_files.PredictReport` (``failures`` lists the
        unreadable inputs, which are skipped).
        """
        inputs = [str(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
        return predict_images(
            self._loaded,
            inputs,
            out_dir,
            min_area=min_area,
            tta=tta_options(tta, window),
            force=force,
            progress=progress,
        )

    def rank(
        self,
        scans,
        out_dir,
        *,
        n: int = 50,
        strategy: str | None = None,
        exclude=(),
        seed: int = 0,
        min_distance: float | None = None,
        force: bool = False,
        progress: bool = True,
    ):
        """``xray-seg rank``: the ``n`` unlabelled scans worth labelling next (docs/labelling.md).

        ``scans``: files, folders or globs; ``exclude``: Labelme or VOC folders whose stems are
        labelled already; ``strategy``: ``"uncertainty"`` (default), ``"screening"`` or
        ``"random"`` (``seed``); ``min_distance``: the near-duplicate distance of the diverse
        pick (:mod:`xray_seg.inference.acquisition`). Writes ``ranking.csv``, ``to_label.txt``
        and ``to_label.png`` into ``out_dir``; an unfinished run there is continued. Returns the
        :class:`~xray_seg.inference.ranking.RankReport` (``chosen``: the stems, in pick order).
        """
        from xray_seg.inference.acquisition import DEFAULT_MIN_DISTANCE, DEFAULT_STRATEGY
        from xray_seg.inference.ranking import RankSettings, rank_scans

        settings = RankSettings(
            n=n,
            strategy=strategy or DEFAULT_STRATEGY,
            seed=seed,
            min_distance=DEFAULT_MIN_DISTANCE if min_distance is None else min_distance,
        )
        scans = [scans] if isinstance(scans, (str, Path)) else list(scans)
        exclude = [exclude] if isinstance(exclude, (str, Path)) else list(exclude)
        return rank_scans(self._loaded, scans, out_dir, settings, exclude=exclude, force=force, progress=progress)

    def pre_annotate(
        self,
        inputs,
        out_dir,
        *,
        min_area: int = 50,
        simplify: float | None = None,
        tta=None,
        window=None,
        force: bool = False,
        include_annotated: bool = False,
        copy_images: bool = False,
        progress: bool = True,
    ):
        """``xray-seg predict --labelme``: a Labelme pre-annotation of every scan, written into ``out_dir``.

        One polygon per predicted item (simplified by at most ``simplify`` pixels, default 0.5),
        labelled with its class, marked unreviewed with its confidence; scans with a
        ``<stem>.json`` beside them are skipped unless ``include_annotated`` (and never
        touched). :mod:`xray_seg.inference.pre_annotation` has the details; returns its
        ``PreAnnotateReport``.
        """
        from xray_seg.inference.pre_annotation import DEFAULT_SIMPLIFY, pre_annotate

        inputs = [str(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
        return pre_annotate(
            self._loaded,
            inputs,
            out_dir,
            min_area=min_area,
            simplify=DEFAULT_SIMPLIFY if simplify is None else simplify,
            tta=tta_options(tta, window),
            force=force,
            include_annotated=include_annotated,
            copy_images=copy_images,
            progress=progress,
        )

    def evaluate(self, voc_dir, split: str = "val", *, tta=None, window=None, stride=None, **kw):
        """Paper 1's PA, mPA, IoU and mIoU on ``split`` of ``voc_dir``; returns the ``EvalResult``.

        Other keywords (``subset``, ``out_dir``, ``force``, ``limit``, ``progress``) go to
        :func:`xray_seg.evaluation.evaluator.evaluate`; ``subset="hidden"`` scores a subset
        of the split (:mod:`xray_seg.evaluation.subsets`).
        """
        from xray_seg.evaluation.evaluator import evaluate

        return evaluate(self._loaded, voc_dir, split=split, tta=tta_options(tta, window, stride), **kw)

    def benchmark(self, inputs, *, runs: int = 30, warmup: int = 5, tta=None) -> dict:
        """Model-only and end-to-end FPS at batch 1 (:func:`xray_seg.evaluation.bench.benchmark`)."""
        from xray_seg.evaluation.bench import benchmark

        paths = expand_inputs([str(p) for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)])
        return benchmark(self._loaded, paths, runs=runs, warmup=warmup, tta=tta_options(tta))

    def export(self, out_dir, **kw):
        """Export for inspection stations (:func:`xray_seg.serving.exporter.export_model`).

        Keywords: ``formats`` (``"savedmodel,tflite"`` by default; ``"all"``), ``force``,
        ``input_size``, ``tflite_runs``, ``progress``, ``calibration`` (int8 formats). Only a model loaded from a run folder or
        ``.keras`` file can be exported. Returns the ``ExportResult``.
        """
        from xray_seg.serving.exporter import export_model

        return export_model(self._loaded, out_dir, **kw)
