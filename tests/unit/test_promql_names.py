"""The metric-name reader the dashboard and alert checks rely on."""

from __future__ import annotations

from tests.promql import exported_names, metric_names


def test_selectors_are_found_and_functions_labels_ranges_are_not() -> None:
    """Names inside aggregations and functions are found; label names, functions and ranges are not."""
    expr = (
        "histogram_quantile(0.95, sum by (le) (rate(vod_download_duration_seconds_bucket[6h])))"
        ' / on (instance) group_left max without (job) (up{job="vodarchiver", x=~"a|b"})'
        " - time() < 12 * 3600 and vods_expiring_soon offset 5m > bool 0"
    )
    assert metric_names(expr) == {
        "vod_download_duration_seconds_bucket",
        "up",
        "vods_expiring_soon",
    }


def test_exported_names_include_counter_and_histogram_series() -> None:
    """A counter's _total and a histogram's _bucket count as exported, even without samples."""
    page = (
        "# HELP a_total A.\n# TYPE a_total counter\n"
        '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1.0"} 0.0\nh_bucket{le="+Inf"} 0.0\n'
        "h_count 0.0\nh_sum 0.0\n"
        "# HELP g G.\n# TYPE g gauge\n"
    )
    names = exported_names(page)
    assert {"a_total", "h_bucket", "h_sum", "h_count", "g"} <= names
    assert "nonexistent_total" not in names
