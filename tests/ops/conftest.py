"""Helpers for ops tests: serve an app object (with extra test routes) and read its metrics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.live import serve_app

__all__ = ["metric", "serve_app"]


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from a Prometheus exposition; 0 when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0
