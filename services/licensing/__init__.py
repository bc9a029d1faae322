"""The licensing service: keeps the licences, decides which interfaces are entitled, publishes
the decisions to Redis for `shared.entitlements.Entitlements`."""
