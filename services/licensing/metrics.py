"""The licensing service's Prometheus metrics: each feature's state and expiry, refusals by
reason, installed licenses."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FEATURE_GRANTED = Gauge(
    "hanport_license_feature_granted", "1 while a license grants the feature, else 0.", ["feature"]
)
FEATURE_EXPIRY = Gauge(
    "hanport_license_feature_expiry_timestamp_seconds",
    "When the feature's grant ends (Unix seconds; +Inf: never; 0: not granted).",
    ["feature"],
)
FEATURE_EXPIRING = Gauge(
    "hanport_license_feature_expiring_soon",
    "1 when the feature's license ends within 3 days.",
    ["feature"],
)
REFUSED = Counter(
    "hanport_license_refused_total",
    "Licenses (uploads or files) refused, by reason.",
    ["reason"],
)
INSTALLED = Gauge("hanport_licenses_installed", "Licenses loaded from the license folder.")
PUBLISH_FAILURES = Counter(
    "hanport_license_publish_failures_total", "Failed writes of the entitlement records to Redis."
)
