# Stand-in for prom/prometheus, from Debian's prometheus (2.42): the binary as the entry point,
# run as nobody, with its storage in /prometheus, as in the real image.
FROM hanport-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir /prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
