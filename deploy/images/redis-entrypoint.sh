#!/bin/sh
# redis-server as the official image starts it: protected mode off (compiled off there).
set -e
if [ "${1:-}" = "redis-server" ]; then
  shift
  exec redis-server "$@" --protected-mode no
fi
exec "$@"
