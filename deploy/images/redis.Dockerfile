# Stand-in for redis:7-alpine, from Debian's redis-server (7.0). Like the real image: /data owned
# by uid 999 / gid 1000 (compose runs it as "999:1000"), the working directory /data (the AOF
# goes there), and protected mode off: the official image compiles it off, because inside a
# container network every client comes from another address than loopback.
FROM hanport-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /data && chown 999:1000 /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["redis-server"]
