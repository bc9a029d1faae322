"""The licensing service: keeps the licenses, decides which interfaces are entitled, publishes
the decisions to Redis for `shared.entitlements.Entitlements`."""
