"""The uplink: every reading of every meter on the box to the fleet's NATS JetStream hub."""
