#!/bin/sh
# Entry point of the `grafana` service (monitoring profile): refuse to run without an admin
# password of the user's own (never Grafana's admin/admin), default the long-term store's data
# sources, then run Grafana's own entry point.
set -eu
case "${GF_SECURITY_ADMIN_PASSWORD:-}" in
  "" | admin)
    echo "grafana: set GRAFANA_ADMIN_PASSWORD in .env (not empty, not 'admin') for the monitoring profile; see docs/security.md" >&2
    exit 1
    ;;
esac
# The long-term store's data sources (provisioning/datasources/stores.yaml, docs/export.md): a
# variable unset or empty gets its default here, so provisioning always has a value to put in.
: "${GRAFANA_POSTGRES_HOST:=postgres:5432}" "${GRAFANA_POSTGRES_DATABASE:=hanport}"
: "${GRAFANA_POSTGRES_USER:=grafana}" "${GRAFANA_POSTGRES_SSLMODE:=disable}"
: "${GRAFANA_POSTGRES_PASSWORD:=}" "${GRAFANA_VICTORIA_URL:=http://victoria:8428}"
export GRAFANA_POSTGRES_HOST GRAFANA_POSTGRES_DATABASE GRAFANA_POSTGRES_USER
export GRAFANA_POSTGRES_SSLMODE GRAFANA_POSTGRES_PASSWORD GRAFANA_VICTORIA_URL
exec "${GRAFANA_RUN:-/run.sh}" "$@"
