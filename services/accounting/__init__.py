"""Energy accounting: interval boundaries by the meter's clock and energy per interval
(`intervals.py`), capacity-tariff rules and headroom (`tariffs.py`), a meter's own peaks from its
telegrams (`seeds.py`), one meter's account and its tariff answer (`account.py`) - all pure -
and the service around them: its Redis keys (`store.py`), the consumer loop (`service.py`),
settings and metrics. `python -m services.accounting` runs it (docs/accounting.md).
"""
