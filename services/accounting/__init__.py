"""Energy accounting's pure core: interval boundaries by the meter's clock and energy per
interval (`intervals.py`), capacity-tariff rules and headroom (`tariffs.py`).

No I/O here. The accounting service that follows every meter's readings, keeps this state in
Redis and serves it over REST, MQTT, Prometheus and Modbus (its `__main__.py`) is not built yet.
"""
