# syntax=docker/dockerfile:1
# envoy-ingest in a small image: Python 3.11 slim, the package in a virtualenv,
# run as an unprivileged user, state (spool, token cache) in a volume.
#
#   docker build -t envoy-ingest .
#   docker run -d --name envoy-ingest --restart unless-stopped \
#     -v "$PWD/settings.toml:/etc/envoy-ingest/settings.toml:ro" \
#     -v envoy-ingest-state:/var/lib/envoy-ingest \
#     -e ENVOY_INGEST_INFLUXDB__TOKEN=... \
#     -p 127.0.0.1:9842:9842 envoy-ingest
#
# Settings: /etc/envoy-ingest/settings.toml (mounted) and ENVOY_INGEST_* variables,
# which override the file. The health listener is always on 0.0.0.0:9842 inside the
# container, since HEALTHCHECK asks it. docs/operations.md has the details.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: install the package and its dependencies into /opt/envoy-ingest -------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/envoy-ingest
WORKDIR /src
COPY pyproject.toml README.md ./
COPY envoy_ingest ./envoy_ingest
RUN /opt/envoy-ingest/bin/pip install . \
 && /opt/envoy-ingest/bin/pip uninstall --yes pip setuptools wheel

# --- run ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG UID=10001
RUN groupadd --system --gid "${UID}" envoy-ingest \
 && useradd --system --uid "${UID}" --gid envoy-ingest --no-create-home \
      --home-dir /var/lib/envoy-ingest --shell /usr/sbin/nologin envoy-ingest \
 && install -d -o envoy-ingest -g envoy-ingest -m 0750 /var/lib/envoy-ingest \
 && install -d -m 0755 /etc/envoy-ingest
COPY --from=build /opt/envoy-ingest /opt/envoy-ingest

# STATE_DIRECTORY is [state].directory's default (as under systemd) and the working
# directory makes [file].directory's default ./data land in the volume too; a mounted
# settings file can still choose other places. The two health variables override it.
ENV PATH=/opt/envoy-ingest/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STATE_DIRECTORY=/var/lib/envoy-ingest \
    ENVOY_INGEST_HEALTH__ENABLED=true \
    ENVOY_INGEST_HEALTH__LISTEN=0.0.0.0:9842

VOLUME ["/var/lib/envoy-ingest"]
WORKDIR /var/lib/envoy-ingest
USER envoy-ingest:envoy-ingest
EXPOSE 9842

# 200 while the scheduler runs and every gateway polled within three intervals.
HEALTHCHECK --interval=60s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:9842/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["envoy-ingest"]
CMD ["run"]
