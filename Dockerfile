# vodarchiver: one daemon per container; state in PostgreSQL (DATABASE_URL) and /data.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# ffmpeg and ffprobe remux and verify every download.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml constraints.txt README.md ./
COPY vodarchiver ./vodarchiver
COPY migrations ./migrations
RUN pip install --no-cache-dir -c constraints.txt . \
 && useradd --system --create-home --uid 10001 vodarchiver \
 && mkdir -p /data && chown vodarchiver:vodarchiver /data

USER vodarchiver
ENV DATA_DIR=/data HTTP_ADDR=0.0.0.0:8080 LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["vodarchiver"]
CMD ["run"]
