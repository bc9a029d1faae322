"""The hub's stream: every box's messages (`hanport.>`), replicated on 3 nodes, file-backed.

`ensure_hub_stream` creates it, or brings an existing one to the configuration (`hanport hub
init`). The duplicate window is how long JetStream remembers message ids: a box's replay of
messages whose acknowledgement it lost (after a crash) comes within seconds of its restart, so
a few minutes suffice; each remembered id costs hub memory (docs/fleet.md, sizing).
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

log = logging.getLogger(__name__)

HUB_STREAM = "HANPORT"
HUB_SUBJECTS = ["hanport.>"]


def hub_stream_config(
    replicas: int = 3, max_age_days: float = 7.0, duplicate_window_s: float = 300.0
) -> StreamConfig:
    return StreamConfig(
        name=HUB_STREAM,
        subjects=HUB_SUBJECTS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_age=max_age_days * 86400,
        discard=DiscardPolicy.OLD,
        duplicate_window=duplicate_window_s,
    )


async def ensure_hub_stream(js: JetStreamContext, config: StreamConfig) -> str:
    """Create the stream or update it to `config`; what was done ('created' or 'updated')."""
    try:
        await js.stream_info(config.name or HUB_STREAM)
    except NotFoundError:
        await js.add_stream(config)
        log.info("created stream %s over %s, %d replicas", config.name, config.subjects,
                 config.num_replicas)  # fmt: skip
        return "created"
    await js.update_stream(config)
    log.info("updated stream %s", config.name)
    return "updated"
