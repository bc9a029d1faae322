"""Code two or more hanport services use: the reading model, stream access, settings, metrics,
logging, reconnect backoff and license entitlements."""
