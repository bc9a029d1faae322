"""What the bridge says when its license changes; the gate itself is `shared.gate.while_granted`
(the delivery runs only while a license grants `mqtt`).

Held off means nothing is read from the stream (readings wait in Redis) and nothing is sent to
the broker; the state is logged once per change and shown in `hanport_mqtt_licensed`.
"""

from __future__ import annotations

import logging

from shared.entitlements import Decision, Feature
from shared.gate import Change

from .metrics import LICENSED

log = logging.getLogger(__name__)
FEATURE: Feature = "mqtt"


def report(change: Change, decision: Decision) -> None:
    LICENSED.set(int(change == "granted"))
    if change == "granted":
        log.info("MQTT is licensed (%s): publishing", decision.license_id or decision.reason)
    elif change == "refused":
        log.warning(
            "MQTT is not licensed (%s): holding off; readings wait in Redis and are "
            "published once a license for 'mqtt' is installed",
            decision.reason,
        )
    else:
        log.warning("the MQTT license is gone (%s): stopped publishing", decision.reason)
