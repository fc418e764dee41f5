"""Report writers: paper tables, Markdown, JSON (NaN -> null), confusion-matrix and curve PNGs."""

import json

import numpy as np
import pytest
from PIL import Image

from xray_seg.core.errors import XraySegError
from xray_seg.evaluation.metrics import segmentation_scores
from xray_seg.evaluation.report import (
    display_name,
    format_paper_tables,
    plot_confusion_matrix,
    plot_training_curves,
    read_history_csv,
    training_curves_figure,
    write_markdown_report,
    write_metrics_json,
)

NAMES = ["_background_", "gun", "knife", "wrench"]
# wrench absent from truth and prediction -> NaN IoU and PA
CM = np.array([[90, 5, 5, 0], [2, 8, 0, 0], [1, 0, 9, 0], [0, 0, 0, 0]])


@pytest.fixture
def scores():
    return segmentation_scores(CM, NAMES)


def test_paper_tables(scores):
    text = format_paper_tables(scores, NAMES, fps=12.123)
    lines = text.splitlines()
    assert "IoU(%)" in lines[1] and "PA(%)" in lines[1]
    bg = next(line for line in lines if line.startswith("Background"))
    # IoU = 90 / (100 + 93 - 90) = 87.38 %, PA = 90 %
    assert bg.split()[1:] == ["87.38", "90.00"]
    assert next(line for line in lines if line.startswith("Wrench")).split()[1:] == ["n/a", "n/a"]
    overall = lines[lines.index("Overall (paper 1, Table 3)") + 3].split()
    assert overall == [f"{100 * scores['miou']:.2f}", f"{100 * scores['mpa']:.2f}", "89.17", "12.12"]
    assert "Wrench" in lines[-1]
    no_fps = format_paper_tables(scores).splitlines()
    assert no_fps[no_fps.index("Overall (paper 1, Table 3)") + 3].split()[-1] == "-"
    assert display_name("_background_") == "Background"


def test_markdown_report(tmp_path, scores):
    path = write_markdown_report(
        tmp_path / "report.md",
        scores,
        NAMES,
        model_name="cwf_deeplabv3plus",
        split="val",
        fps=None,
        extra={"images": 3},
    )
    text = path.read_text()
    assert text.startswith("# Evaluation of cwf_deeplabv3plus on `val`")
    assert "| Gun | 53.33 | 80.00 | 10 | 13 |" in text  # IoU 8/(10+13-8), PA 8/10
    assert "| images | 3 |" in text and "Confusion matrix" in text
    assert not list(tmp_path.glob(".*tmp*"))


def test_markdown_details_are_plain_text(tmp_path, scores):
    """The Details table reads as text: no brackets, quotes, None, True/False or long floats."""
    extra = {
        "tta_scales": [1.0, 0.75],
        "tta_flip": False,
        "window": None,
        "geometry": {"rule": "scale, pad, tiles", "scale": 1.0, "tile": [128, 128], "overlap": 1 / 3},
    }
    path = write_markdown_report(
        tmp_path / "report.md", scores, NAMES, model_name="m", split="val", fps=None, extra=extra
    )
    details = path.read_text().split("## Details", 1)[1]
    assert "| tta scales | 1, 0.75 |" in details
    assert "| tta flip | no |" in details and "| window | none |" in details
    assert "| geometry | rule: scale, pad, tiles; scale: 1; tile: 128x128; overlap: 0.3333 |" in details
    for python in ("[", "{", "'", "None", "False", "0.33333"):
        assert python not in details, python


def test_metrics_json_nan_is_null(tmp_path, scores):
    path = write_metrics_json(tmp_path / "metrics.json", scores, NAMES, model="m", fps=np.float32(3.5))
    doc = json.loads(path.read_text())
    assert doc["per_class"]["wrench"] == {"iou": None, "pa": None, "gt_pixels": 0, "pred_pixels": 0}
    assert doc["per_class"]["knife"]["pa"] == pytest.approx(0.9)
    assert doc["iou"][3] is None and doc["miou"] == pytest.approx(scores["miou"])
    assert doc["pa"] == pytest.approx(107 / 120)
    assert doc["model"] == "m" and doc["fps"] == 3.5
    assert doc["confusion_matrix"] == CM.tolist()

    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    json.loads(path.read_text(), parse_constant=reject)  # no NaN/Infinity anywhere


@pytest.mark.parametrize("normalize", ["true", "pred", "all", None])
def test_confusion_matrix_png(tmp_path, normalize):
    path = plot_confusion_matrix(tmp_path / "cm.png", CM, NAMES, normalize=normalize)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
    with pytest.raises(ValueError):
        plot_confusion_matrix(tmp_path / "bad.png", CM, NAMES[:2])


def test_training_curves(tmp_path):
    csv_path = tmp_path / "history.csv"
    csv_path.write_text(
        "epoch,learning_rate,loss,miou,val_loss,val_miou\n"
        "0,0.001,1.5,0.20,1.6,0.18\n1,0.0009,1.1,0.35,1.2,0.30\n2,0.0008,0.9,0.45,,0.41\n"
    )
    columns = read_history_csv(csv_path)
    assert set(columns) == {"epoch", "learning_rate", "loss", "miou", "val_loss", "val_miou"}
    assert np.isnan(columns["val_loss"][2])
    path = plot_training_curves(tmp_path / "curves.png", csv_path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]
    with pytest.raises(XraySegError, match="not found"):
        plot_training_curves(tmp_path / "x.png", tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("epoch\n")
    with pytest.raises(XraySegError, match="no numeric"):
        plot_training_curves(tmp_path / "x.png", tmp_path / "empty.csv")


def test_training_curves_join_validation_points_and_keep_throughput_apart(tmp_path):
    """Validation runs every 2nd epoch (NaN between): each val curve is one line through
    exactly its finite points; throughput and epoch seconds stay out of the metrics panel."""
    import matplotlib.pyplot as plt

    nan = "nan"
    rows = [  # epoch, epoch_seconds, loss, lr, train_images_per_sec, val_iou_gun, val_iou_wrench, val_miou, val_pa
        (0, 9.0, 1.6, 1e-3, 3.0, nan, nan, nan, nan),
        (1, 2.1, 1.2, 9e-4, 15.0, 0.20, nan, 0.55, 0.95),
        (2, 2.0, 1.0, 8e-4, 16.0, nan, nan, nan, nan),
        (3, 2.0, 0.8, 7e-4, 16.5, nan, nan, 0.61, 0.96),  # gun absent this time
        (4, 2.2, 0.7, 6e-4, 15.5, nan, nan, nan, nan),
        (5, 2.0, 0.6, 5e-4, 16.0, 0.40, nan, 0.70, 0.97),
    ]
    csv_path = tmp_path / "history.csv"
    csv_path.write_text(
        "epoch,epoch_seconds,loss,lr,train_images_per_sec,val_iou_gun,val_iou_wrench,val_miou,val_pa\n"
        + "".join(",".join(str(v) for v in row) + "\n" for row in rows)
    )
    fig = training_curves_figure(csv_path)
    try:
        axes = {ax.get_title(): ax for ax in fig.axes}
        assert set(axes) == {"loss", "metrics", "learning rate", "throughput"}
        for ax in axes.values():
            assert ax.get_xlabel() == "epoch" and ax.get_ylabel()
        lines = {title: {line.get_label(): line for line in ax.get_lines()} for title, ax in axes.items()}

        miou = lines["metrics"]["val mIoU"]
        assert list(miou.get_xdata()) == [2, 4, 6]  # epochs 1-based, the three validated ones
        assert list(miou.get_ydata()) == [0.55, 0.61, 0.70]
        assert list(lines["metrics"]["IoU Gun"].get_xdata()) == [2, 6]  # joined over two gaps
        assert "IoU Wrench" not in lines["metrics"]  # never measured: no empty legend entry
        assert set(lines["metrics"]) == {"val mIoU", "val PA", "IoU Gun"}
        legend = [t.get_text() for t in axes["metrics"].get_legend().get_texts()]
        assert legend[0] == "val mIoU" and "IoU Gun" in legend

        assert set(lines["loss"]) == {"train loss"} and len(lines["loss"]["train loss"].get_xdata()) == 6
        assert set(lines["throughput"]) == {"train images per sec"}  # epoch_seconds is not drawn
        assert not any("sec" in label for label in lines["metrics"]) and set(lines["learning rate"]) == {"lr"}
        metrics_box, throughput_box = axes["metrics"].get_position(), axes["throughput"].get_position()
        assert throughput_box.height < metrics_box.height / 2  # throughput is a small panel
    finally:
        plt.close(fig)

    path = plot_training_curves(tmp_path / "curves.png", csv_path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1]
