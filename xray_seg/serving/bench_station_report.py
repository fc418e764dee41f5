"""The printed report of ``xray-seg bench --suite station``: header, markdown table and checks."""

from __future__ import annotations

from xray_seg.evaluation.peak import fp32_flops_per_cycle

INT8 = ("tflite_int8", "tflite_int8_dynamic", "onnx_int8", "openvino_int8")


def fmt_pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def header_lines(s, results) -> list[str]:
    """The CPU, its theoretical and measured peaks, and the two models measured."""
    cpu, peak, theoretical, flops = (results[k] for k in ("cpu", "matmul_peak", "theoretical_peak_gflops", "flops"))
    first = next(iter(flops.values()))
    return [
        f"CPU: {cpu['model']}, {cpu['cores']} cores at {cpu['mhz']} MHz; vector extensions: {' '.join(cpu['vector'])}",
        f"theoretical fp32 peak: {cpu['cores']} cores x {cpu['mhz']} MHz x {fp32_flops_per_cycle(cpu['vector'])} "
        f"FLOP/cycle = {theoretical or float('nan'):.1f} GFLOP/s",
        f"measured matmul peak (best of TF and numpy at n = {','.join(map(str, s.peak_sizes))}, before and after "
        f"the rounds): {peak['gflops']:.1f} GFLOP/s ({peak['best']['backend']}, n = {peak['best']['n']})",
        f"latency model: {s.model} width {s.width}, {s.classes} classes, RANDOM weights, tile {s.tile}: "
        f"{first['gflops'] / first['tiles']:.2f} GFLOPs per tile (2 x MACs); batch 1; "
        f"median of {s.rounds} interleaved rounds",
        f"accuracy model: {s.run or 'none'} on the val split of {s.voc or 'none'}",
    ]


def _row(label, row, acc, names) -> list[str]:
    cells = [label]
    for n in names:
        z = row["sizes"].get(n)
        cells.append(f"{z['median_ms']:.1f} ({z['min_ms']:.1f}-{z['max_ms']:.1f})" if z else "not run")
    cells.append(f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] else "n/a")
    first = row["sizes"][names[0]]
    cells += [fmt_pct(first["share_of_matmul_peak"]), fmt_pct(first["share_of_theoretical_peak"])]
    if "miou" in acc:
        pd = acc["pd_at_pfa_5"]
        cells += [f"{acc['miou']:.4f}", f"{acc['miou_delta_points']:+.2f}", "n/a" if pd is None else f"{pd:.3f}"]
    else:
        cells += [acc.get("error", "not measured")[:80], "", ""]
    return cells


def markdown_table(labels, results, names) -> str:
    """One row per engine: latency per size, peak RSS, shares of the peaks, accuracy vs Keras."""
    head = ["engine", *(f"{n} ms median (min-max)" for n in names), "peak RSS MB"]
    head += [f"% matmul peak ({names[0]})", f"% theoretical ({names[0]})", "val mIoU", "vs Keras (points)", "PD@PFA5%"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in labels:
        if label in results["not_run"]:
            lines.append(f"| {label} | not run: {results['not_run'][label]} |" + " |" * (len(head) - 2))
        else:
            cells = _row(label, results["engines"][label], results["accuracy"].get(label) or {}, names)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fastest(rows, labels, name):
    have = [(rows[lb]["sizes"][name]["median_ms"], lb) for lb in labels if lb in rows]
    return min(have) if have else None


def target_lines(rows, accuracy, name) -> list[str]:
    """The latency targets at the first size, each against the Keras model of this run."""
    if "keras" not in rows:
        return []
    keras_ms = rows["keras"]["sizes"][name]["median_ms"]
    lines = []
    fp32 = _fastest(rows, [lb for lb in rows if lb != "keras" and lb not in INT8], name)
    if fp32:
        ratio = keras_ms / fp32[0]
        lines.append(
            f"fp32: fastest station engine {fp32[1]} is {ratio:.2f}x Keras at {name} (target >= 1.5x): "
            + ("MET" if ratio >= 1.5 else "NOT MET")
        )
    close = [lb for lb in rows if lb in INT8 and accuracy.get(lb, {}).get("miou_delta_points", -99) >= -1.0]
    int8 = _fastest(rows, close, name)
    if int8:
        ratio = keras_ms / int8[0]
        lines.append(
            f"int8: fastest int8 engine within 1 point of Keras mIoU, {int8[1]}, is {ratio:.2f}x Keras "
            f"(target >= 2.5x): " + ("MET" if ratio >= 2.5 else "NOT MET")
        )
    return lines


def rss_check(rows) -> list[str]:
    """Each worker's own peak, not the parent's: ONNX Runtime alone imports no TensorFlow, so its
    worker must peak below the Keras one."""
    if not {"onnx", "keras"} <= rows.keys():
        return []
    onnx, keras = rows["onnx"]["peak_rss_mb"], rows["keras"]["peak_rss_mb"]
    verdict = "MET" if onnx < keras else "NOT MET"
    return [f"peak RSS: onnx worker {onnx:.0f} MB below the keras worker's {keras:.0f} MB: {verdict}"]
