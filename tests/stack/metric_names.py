"""The Prometheus metric names hanport exports: every module of `services` and `shared` is
imported and the default registry walked, so a metric defined anywhere is found.

Produces sample names as Prometheus stores them (`_total` for counters, `_bucket`/`_sum`/`_count`
for histograms)."""

from __future__ import annotations

import importlib
import pkgutil

from prometheus_client import REGISTRY

import services
import shared

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "unknown": ("",),
}


def exported_metric_names() -> set[str]:
    for package in (services, shared):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names
