"""The in-graph alarm (serving/alarm_graph.py) equals the host decision (inference/alarm_rule.py)."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from xray_seg.inference.alarm_rule import AlarmRule, decide  # noqa: E402
from xray_seg.serving.alarm_graph import alarm_outputs  # noqa: E402

NAMES = ["_background_", "gun", "knife", "pliers"]


def blobby_probs(seed, h, w, k=4):
    """Smooth random probabilities: blobs, thin bridges and fragments of every class."""
    rng = np.random.default_rng(seed)
    low = rng.normal(size=(1, max(2, h // 6), max(2, w // 6), k)).astype(np.float32) * 3
    low[..., 0] += 1.5
    logits = tf.image.resize(low, (h, w), method="bicubic").numpy()[0]
    logits += rng.normal(size=logits.shape).astype(np.float32) * 0.4
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def host(probs, rule):
    d = decide(probs.argmax(-1).astype(np.uint8), probs, rule)
    per_class = np.zeros(len(NAMES), bool)
    for c in d["alarm_classes"]:
        per_class[NAMES.index(c)] = True
    return d["alarm"], per_class, d["scores"]


def graph(probs_batch, sizes, rule):
    out = alarm_outputs(
        tf.constant(probs_batch),
        tf.constant(sizes, tf.int32),
        thresholds=rule.thresholds,
        min_area=rule.min_area,
        closing=rule.closing,
    )
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("closing", [0, 1, 2])
def test_graph_equals_host_decision(closing):
    rule = AlarmRule.default(NAMES, closing=closing)
    rule.min_area = [0, 40, 80, 20]
    alarms_seen = set()
    for seed in range(6):
        probs = blobby_probs(seed, 48, 64)
        # thresholds between observed scores, so both sides are well away from a tie
        rule.thresholds = [1.0, 0.55, 0.6, 0.5] if seed % 2 else [1.0, 0.97, 0.98, 0.99]
        want_alarm, want_pc, want_scores = host(probs, rule)
        got = graph(probs[None], [[48, 64]], rule)
        np.testing.assert_allclose(got["alarm_scores"][0], want_scores, atol=1.01e-4)
        np.testing.assert_array_equal(got["alarm_per_class"][0], want_pc)
        assert bool(got["alarm"][0]) == want_alarm
        alarms_seen.add(want_alarm)
    assert alarms_seen == {True, False}  # the cases exercise both outcomes


def test_padded_batch_equals_each_image_alone():
    rule = AlarmRule.default(NAMES, closing=2)
    rule.thresholds = [1.0, 0.5, 0.5, 0.5]
    rule.min_area = [0, 30, 30, 30]
    a, b = blobby_probs(7, 40, 64), blobby_probs(8, 56, 36)
    batch = np.zeros((2, 56, 64, 4), np.float32)  # serve_encoded pads probabilities with 0
    batch[0, :40, :64], batch[1, :56, :36] = a, b
    got = graph(batch, [[40, 64], [56, 36]], rule)
    for i, p in enumerate((a, b)):
        _, pc, scores = host(p, rule)
        np.testing.assert_allclose(got["alarm_scores"][i], scores, atol=1.01e-4)
        np.testing.assert_array_equal(got["alarm_per_class"][i], pc)


def test_broken_wire_alarms_in_graph_only_with_closing():
    class_map = np.zeros((40, 200), np.uint8)
    for i in range(12):  # a wire broken into 12 fragments of 60 px, 2 px apart
        class_map[10:16, 5 + 12 * i : 15 + 12 * i] = 3
    probs = np.zeros((40, 200, 4), np.float32)
    probs[..., 0] = 1.0
    probs[class_map == 3] = (0.1, 0.0, 0.0, 0.9)
    for closing, expect in ((0, False), (2, True)):
        rule = AlarmRule.default(NAMES, closing=closing)
        got = graph(probs[None], [[40, 200]], rule)
        assert bool(got["alarm"][0]) is expect and bool(got["alarm_per_class"][0, 3]) is expect


def _same_partition(roots, coords, mask):
    """True when the graph's roots split the mask's pixels exactly as OpenCV's 8-connected components do."""
    import cv2

    got = {}
    for (b, y, x, c), root in zip(coords, roots):
        got[(b, c, y, x)] = root
    for b in range(mask.shape[0]):
        for c in range(mask.shape[3]):
            _, want = cv2.connectedComponents(mask[b, :, :, c].astype(np.uint8), connectivity=8)
            pairs = {(want[y, x], got[(b, c, y, x)]) for y, x in zip(*np.nonzero(mask[b, :, :, c]))}
            if len({w for w, _ in pairs}) != len(pairs) or len({g for _, g in pairs}) != len(pairs):
                return False
    return True


def test_components_of_a_serpentine_and_of_noise_match_opencv():
    from xray_seg.serving.alarm_graph import component_roots

    serpentine = np.zeros((41, 60), np.float32)  # one 1-px path of about 1200 pixels, folded 10 times
    for i, row in enumerate(range(0, 41, 4)):
        serpentine[row, :] = 1
        if row + 4 < 41:
            serpentine[row : row + 5, 59 if i % 2 == 0 else 0] = 1
    rng = np.random.default_rng(3)
    noise = (rng.random((41, 60)) < 0.45).astype(np.float32)  # many components, diagonal links
    mask = np.stack([serpentine, noise], -1)[None]
    mask = np.concatenate([mask, mask[:, ::-1]], 0)  # a batch of 2, the second flipped
    coords, roots = component_roots(tf.constant(mask))
    coords, roots = coords.numpy(), roots.numpy()
    assert len(coords) == int(mask.sum())
    assert _same_partition(roots, coords, mask)
    assert len(set(roots[(coords[:, 0] == 0) & (coords[:, 3] == 0)])) == 1  # the serpentine is one component


def test_empty_mask_has_no_components_and_no_alarm():
    rule = AlarmRule.default(NAMES, closing=2)
    probs = np.zeros((1, 16, 20, 4), np.float32)
    probs[..., 0] = 1.0
    got = graph(probs, [[16, 20]], rule)
    assert not got["alarm"][0] and not got["alarm_per_class"].any() and (got["alarm_scores"] == 0).all()


@pytest.mark.parametrize("closing", [0, 2])
def test_strips_of_a_few_rows_give_the_whole_scan_decision(closing):
    """Components cut by many strip edges (a 1-px serpentine, diagonal noise, blobs that span
    strips) are joined back: the scores equal the host decision on the whole scan."""
    rule = AlarmRule.default(NAMES, closing=closing)
    rule.min_area = [0, 40, 80, 300]  # pliers: only the whole serpentine is big enough
    rule.thresholds = [1.0, 0.55, 0.6, 0.5]
    probs = blobby_probs(11, 61, 47)
    serpentine = np.zeros((61, 47), bool)  # one 1-px path folded 7 times, crossing every strip edge
    for i, row in enumerate(range(0, 61, 8)):
        serpentine[row, :] = True
        if row + 8 < 61:
            serpentine[row : row + 9, 46 if i % 2 == 0 else 0] = True
    probs[serpentine] = (0.05, 0.05, 0.05, 0.85)
    staircase = np.zeros((61, 47), bool)  # a diagonal 1-px line: each strip edge is crossed corner to corner
    staircase[np.arange(10, 50), np.arange(3, 43)] = True
    probs[staircase] = (0.1, 0.8, 0.05, 0.05)
    want_alarm, want_pc, want_scores = host(probs, rule)
    assert want_scores[3] > 0  # the serpentine passes its min area only when it is one component
    for strip_rows in (1, 7):
        decide_in_graph = tf.function(
            lambda p, s, rows=strip_rows: alarm_outputs(
                p, s, thresholds=rule.thresholds, min_area=rule.min_area, closing=rule.closing, strip_rows=rows
            )
        )
        out = decide_in_graph(tf.constant(probs[None]), tf.constant([[61, 47]], tf.int32))
        np.testing.assert_allclose(out["alarm_scores"].numpy()[0], want_scores, atol=1.01e-4, err_msg=f"{strip_rows}")
        np.testing.assert_array_equal(out["alarm_per_class"].numpy()[0], want_pc)
        assert bool(out["alarm"].numpy()[0]) == want_alarm
