"""The fleet hub: the replicated JetStream stream every box's uplink writes to, its credentials,
and the sink workers that write it on to VictoriaMetrics (docs/fleet.md, deploy/hub/)."""
