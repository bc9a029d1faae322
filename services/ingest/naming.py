"""The meter's name on the box, stamped on every reading (`Reading.meter`).

`HANPORT_METER_NAME` when set; else the equipment id the meter sends (decoded from hex ASCII,
`shared.meters.equipment_name`); else a name made from the source (`dev-ttyUSB0`). A meter that
starts sending another equipment id (it was replaced) is logged; a configured name is kept, an
unconfigured one follows the new id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from shared.meters import equipment_name, name_from_text
from shared.reading import Reading

from .sources.spec import SourceSpec

log = logging.getLogger(__name__)


@dataclass
class MeterNaming:
    """Names the readings of one ingest's meter."""

    configured: str | None
    source: str  # the source as described in logs (`serial /dev/ttyUSB0`)
    fallback: str = "meter"  # the name when the meter sends no equipment id (`source_name`)
    meter_id: str | None = None  # the equipment id last seen
    name: str | None = None  # the name last given

    def stamp(self, reading: Reading) -> Reading:
        """Set `reading.meter`; returns the reading."""
        if reading.meter_id and reading.meter_id != self.meter_id:
            if self.meter_id is not None:
                log.warning(
                    "the meter on %s now sends equipment id %s (was %s): replaced? %s",
                    self.source,
                    reading.meter_id,
                    self.meter_id,
                    f"its name stays {self.configured!r}"
                    if self.configured
                    else "its readings now carry the new id's name",
                )
            self.meter_id = reading.meter_id
        if self.configured:
            name = self.configured
        elif self.meter_id:
            name = equipment_name(self.meter_id)
        else:
            name = self.fallback
        self.name = reading.meter = name
        return reading


def source_name(spec: SourceSpec) -> str:
    """A meter name made from where its bytes come from: `ttyUSB0`, `10.0.0.5-2000`,
    `e450-capture` (a file's stem), `simulator`."""
    if spec.kind == "serial" and spec.path:
        return name_from_text(spec.path.rsplit("/", 1)[-1])
    if spec.kind == "tcp":
        return name_from_text(f"{spec.host}-{spec.port}")
    if spec.kind == "file" and spec.path:
        return name_from_text(spec.path.rsplit("/", 1)[-1].split(".", 1)[0])
    return "simulator"
