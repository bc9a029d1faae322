# Stand-in for eclipse-mosquitto:2, from Debian's mosquitto (2.0): the folders of the real image,
# /mosquitto/data and /mosquitto/log owned by uid/gid 1883 (compose runs it as "1883:1883").
FROM hanport-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends mosquitto mosquitto-clients \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /mosquitto/config /mosquitto/data /mosquitto/log \
 && chown 1883:1883 /mosquitto/data /mosquitto/log
EXPOSE 1883
CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]
