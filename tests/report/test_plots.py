"""The plots render from plain data, whatever the outcomes (content is checked by eye)."""

from __future__ import annotations

import io

import matplotlib.image

from kvfree_sim.report.plots import completion_plot, same_as_earlier, timeline_plot

from report_rows import make_row

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(draw) -> tuple[int, int]:
    """Draw into memory; (width, height) of the PNG."""
    buf = io.BytesIO()
    draw(buf)
    data = buf.getvalue()
    assert data.startswith(PNG_MAGIC)
    img = matplotlib.image.imread(io.BytesIO(data), format="png")
    return img.shape[1], img.shape[0]


def _samples(n: int, drain: bool) -> list[dict[str, int]]:
    return [{"t_ns": i * 10_000_000, "free_pages": 20000 - 100 * i, "wmark_min": 1000, "wmark_low": 1250,
             "wmark_high": 1500, "cached_pages": 0 if drain and i % 3 == 0 else 5 * 64,
             "shrink_scan": i // 2 if drain else 0, "fill_runs": 4 * i} for i in range(n)]


def test_completion_plot_with_oom_runs(rows) -> None:
    w, h = _png(lambda f: completion_plot(rows, ["base", "patched"], f, title="64 CPUs, 512M"))
    assert w > 600 and h > 300


def test_completion_plot_when_nothing_completed_and_names_are_long() -> None:
    variants = [f"v5.11+v3+long-variant-name-{i}" for i in range(6)]
    rows = [make_row(v, s, outcome="oom-panic", total_s=None) for v in variants for s in (1, 2)]
    _png(lambda f: completion_plot(rows, variants, f))


def test_completion_plot_single_run() -> None:
    _png(lambda f: completion_plot([make_row("v5.11", 1)], ["v5.11"], f))


def test_timeline_plot_with_samples_and_a_variant_without() -> None:
    samples = {"v5.11": _samples(50, False), "v5.11+v3": _samples(80, True), "v5.14": None}
    w, h = _png(lambda f: timeline_plot(samples, f, title="t"))
    assert h > 800  # four panels, one under the other


def test_timeline_plot_without_samples_says_so() -> None:
    w, h = _png(lambda f: timeline_plot({"v5.11": None, "v5.11+v3": []}, f, why_empty="(no hook)"))
    assert h < 400  # the small "no samples" figure


def test_plots_write_to_a_path(tmp_path) -> None:
    path = tmp_path / "t.png"
    timeline_plot({"a": _samples(5, True)}, str(path))
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_identical_runs_are_named_as_the_same_in_the_legend() -> None:
    """A line drawn exactly over another hides it: the legend says which variant it repeats."""
    a, b = _samples(20, False), _samples(20, True)
    assert same_as_earlier({"v5.11": a, "v5.11+v3": list(a), "v5.14": b, "v5.11+v3+backoff": list(b)}) == \
        {"v5.11+v3": "v5.11", "v5.11+v3+backoff": "v5.14"}
    assert same_as_earlier({"v5.11": a, "v5.14": b}) == {}


def test_timeline_plot_when_no_run_called_the_shrinker() -> None:
    samples = {"v5.11": _samples(30, False), "v5.11+v3": _samples(30, False)}
    w, h = _png(lambda f: timeline_plot(samples, f))
    assert h > 800
