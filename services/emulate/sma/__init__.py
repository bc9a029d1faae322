"""The SMA Energy Meter personality: the meter as Speedwire datagrams that SMA inverters,
Sunny Island, Sunny Home Manager and evcc read (docs/emulate_sma.md).

- speedwire.py: the datagram from a reading (pure; the OBIS channel table).
- settings.py: `HANPORT_SMA_*` (`SmaSettings`, which the emulation service's settings inherit).
- sender.py: `run_sma(settings, latest, box_serial)`, the UDP multicast/unicast sender.
- metrics.py: `hanport_emulate_sma_*`.

The emulation service runs it, with the `sma` license feature, as one more supervised work:

    run_sma(settings, lambda: latest.get(sma_choice.meter_for()), identity.serial)
"""

from .sender import run_sma
from .settings import SmaSettings

__all__ = ["SmaSettings", "run_sma"]
