"""The REST service: follows the readings stream and serves the latest reading (Cozify-compatible
`/meter`), history, server-sent events, a WebSocket, state, health, metrics and a live page."""
