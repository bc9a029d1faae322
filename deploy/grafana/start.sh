#!/bin/sh
# Entry point of the `grafana` service (monitoring profile): refuse to run without an admin
# password of the user's own (never Grafana's admin/admin), then run Grafana's own entry point.
set -eu
case "${GF_SECURITY_ADMIN_PASSWORD:-}" in
  "" | admin)
    echo "grafana: set GRAFANA_ADMIN_PASSWORD in .env (not empty, not 'admin') for the monitoring profile; see docs/security.md" >&2
    exit 1
    ;;
esac
exec "${GRAFANA_RUN:-/run.sh}" "$@"
