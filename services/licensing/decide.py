"""The decision: which installed license grants each feature now, and why not when none does.

Consumes verified licenses (`shared.license.Signed`), the reader's serial, the declared use, the
time and the meter seen on the readings stream; produces a `FeatureState` per feature and the
next moment the answer can change (a license starting, ending, or entering its last 3 days).
Pure functions: no I/O, no clock of their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from shared.entitlements import FEATURES, Record
from shared.license import DAY_MS, LicenseError, Signed, Use, check

WARN_BEFORE_MS = 3 * DAY_MS


@dataclass(frozen=True)
class FeatureState:
    granted: bool
    reason: str
    until: int | None = None  # ms; None: never ends (or not granted)
    license: Signed | None = None

    def record(self, feature: str, updated: int) -> Record:
        return Record(
            feature=feature,
            granted=self.granted,
            reason=self.reason,
            until=self.until,
            license_id=self.license.id if self.license else None,
            license=self.license.text.decode() if self.license else None,
            updated=updated,
        )


def _end(signed: Signed) -> float:
    expires = signed.license.expires_ms
    return math.inf if expires is None else expires


def evaluate(
    licenses: Iterable[Signed],
    *,
    serial: str | None,
    use: Use,
    now: int,
    meter_id: str | None,
) -> dict[str, FeatureState]:
    """Per feature: granted by the valid license that lasts longest, or the reasons none does."""
    licenses = list(licenses)
    states: dict[str, FeatureState] = {}
    for feature in FEATURES:
        if feature == "rest" and use == "consumer":
            states[feature] = FeatureState(True, "REST is free in consumer use")
            continue
        best: Signed | None = None
        reasons: list[str] = []
        for signed in licenses:
            license = signed.license
            if feature not in license.features:
                continue
            if license.meter_id is not None and meter_id is None:
                reasons.append(
                    f"license {license.id} is bound to meter {license.meter_id}, "
                    "and no reading has named a meter yet"
                )
                continue
            try:
                check(license, serial=serial, use=use, now=now, meter_id=meter_id)
            except LicenseError as error:
                reasons.append(f"license {license.id}: {error}")
                continue
            if best is None or _end(signed) > _end(best):
                best = signed
        if best is not None:
            lic = best.license
            states[feature] = FeatureState(
                True, f"license {lic.id} ({lic.use} {lic.kind})", lic.expires_ms, best
            )
        else:
            states[feature] = FeatureState(
                False,
                "; ".join(reasons)
                or f"no {use} license for '{feature}' is installed for reader {serial}",
            )
    return states


def next_boundary(licenses: Iterable[Signed], now: int) -> int | None:
    """The next moment (ms) after `now` at which `evaluate` or the expiry warning can change."""
    moments: list[int] = []
    for signed in licenses:
        moments.append(signed.license.not_before_ms)
        expires = signed.license.expires_ms
        if expires is not None:
            moments += [expires, expires - WARN_BEFORE_MS]
    future = [m for m in moments if m > now]
    return min(future) if future else None
