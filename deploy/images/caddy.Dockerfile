# Stand-in for caddy:2-alpine, from Debian's caddy (2.6): the same configuration and state
# folders (XDG_CONFIG_HOME=/config, XDG_DATA_HOME=/data) and the same default command.
FROM hanport-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends caddy \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /config/caddy /data/caddy /etc/caddy /srv
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
WORKDIR /srv
EXPOSE 80 443 2019
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
