#!/bin/sh
# Entry point of the `mosquitto` service (broker profile): refuse to run without a password,
# write the hashed password file, then run mosquitto with deploy/mosquitto/mosquitto.conf.
set -eu
if [ -z "${MQTT_PASSWORD:-}" ]; then
  echo "mosquitto: set HANPORT_MQTT_PASSWORD (and HANPORT_MQTT_USERNAME) in .env for the broker profile" >&2
  exit 1
fi
data="${MOSQUITTO_DATA:-/mosquitto/data}"
umask 077
rm -f "$data/passwd"
touch "$data/passwd"
mosquitto_passwd -b "$data/passwd" "${MQTT_USERNAME:-hanport}" "$MQTT_PASSWORD"
exec mosquitto -c "${MOSQUITTO_CONFIG:-/mosquitto/config/mosquitto.conf}"
