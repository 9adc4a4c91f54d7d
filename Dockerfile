# syntax=docker/dockerfile:1.7
# The tracker in a container: docker build -t tracker . && docker run -p 8000:8000 \
#   -e TRACKER_DATABASE_URL=postgresql://user:password@db:5432/tracker \
#   -e TRACKER_SECRET_KEYS=... -e TRACKER_API_KEY=... -e TRACKER_PUBLIC_URL=https://t.example.com \
#   -v tracker-journal:/var/lib/tracker tracker
#
# Configuration is the environment variables of shared/API.md, nothing else. In a
# container TRACKER_DATABASE_URL is required (the embedded PostgreSQL is for one
# machine and is not even installed here); every instance behind a load balancer
# must share TRACKER_SECRET_KEYS, or links minted by one fail on another.
# /var/lib/tracker holds the durable journal: keep it on a volume, so events
# acknowledged but not yet in PostgreSQL survive a container restart.

# --- build: a virtual environment with the tracker and its dependencies --------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/tracker
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY tracker ./tracker
# pgserver (the embedded PostgreSQL, 34 MB of server binaries) is a dependency for
# the one-machine setup only; a container always talks to an external database.
RUN /opt/tracker/bin/pip install . \
 && /opt/tracker/bin/pip uninstall -y pgserver \
 && find /opt/tracker -name __pycache__ -prune -exec rm -rf {} +

# --- runtime: the venv, a non-root user, nothing else ----------------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 tracker \
 && useradd --system --uid 10001 --gid tracker --home-dir /var/lib/tracker --create-home \
    --shell /usr/sbin/nologin tracker
COPY --from=build /opt/tracker /opt/tracker
COPY --chmod=0755 <<'EOF' /usr/local/bin/tracker-entrypoint
#!/bin/sh
# Refuse to start without an external database: the embedded one is not for containers.
set -eu
if [ -z "${TRACKER_DATABASE_URL:-}" ]; then
    echo "tracker: TRACKER_DATABASE_URL is not set. A container needs an external PostgreSQL;" \
         "start it with -e TRACKER_DATABASE_URL=postgresql://user:password@host:5432/tracker" >&2
    exit 64
fi
if [ -z "${TRACKER_SECRET_KEYS:-}" ]; then
    echo "tracker: warning: TRACKER_SECRET_KEYS is not set; a key is generated in" \
         "${TRACKER_DATA_DIR:-./.tracker}. Every instance behind one load balancer" \
         "must share the same keys." >&2
fi
exec tracker "$@"
EOF
ENV PATH=/opt/tracker/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRACKER_DATA_DIR=/var/lib/tracker
VOLUME ["/var/lib/tracker"]
USER tracker
WORKDIR /var/lib/tracker
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["tracker-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
