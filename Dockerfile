# One image for every hanport service; each compose service picks its command (`hanport <name>`).
# Multi-stage: wheels are installed into a virtual environment in the build stage (which has a
# compiler for any dependency without a wheel on the target platform); the final stage copies
# only that environment, has no compiler, and runs as an unprivileged user.
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 -t hanport .
# No `# syntax=` line: the builder's own Dockerfile frontend is enough, so the classic builder
# and BuildKit both build it without reaching a registry for a frontend image.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/hanport
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY shared ./shared
COPY services ./services
RUN /opt/hanport/bin/pip install . \
 && /opt/hanport/bin/python -m compileall -q /opt/hanport

FROM python:${PYTHON_VERSION}-slim-bookworm
LABEL org.opencontainers.image.title="hanport" \
      org.opencontainers.image.description="Gateway for electricity meters' HAN/P1 ports: REST, MQTT, Modbus TCP, Prometheus" \
      org.opencontainers.image.licenses="Apache-2.0"
# dialout (gid 20) lets the ingest service open a serial adapter mapped into the container.
RUN useradd --system --uid 10001 --gid nogroup --groups dialout --home-dir /data \
      --no-create-home --shell /usr/sbin/nologin hanport \
 && mkdir -p /data/licences \
 && chown -R hanport:nogroup /data
COPY --from=build /opt/hanport /opt/hanport
ENV PATH=/opt/hanport/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HANPORT_LICENSE_DIR=/data/licences
WORKDIR /data
USER hanport
CMD ["hanport", "--help"]
