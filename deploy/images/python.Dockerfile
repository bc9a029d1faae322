# Stand-in for python:3.11-slim-bookworm, from Debian's python3 (3.11): `python` and `python3`
# in /usr/local/bin as in the real image, venv support, Python's C headers (the real image has
# them: the build stage compiles the export's C fast path), and the build host's CA bundle (the
# build copies it in) so that pip can reach the package index through a TLS-inspecting proxy.
FROM hanport-standin/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && ln -s /usr/bin/python3 /usr/local/bin/python3
COPY host-ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV LANG=C.UTF-8 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
