# syntax=docker/dockerfile:1
#
# The parsec-server image.
#
#   docker build -t parsec-server:0.1.0 --build-arg VERSION=0.1.0 \
#       --build-arg REVISION="$(git rev-parse HEAD)" --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
#
# Entrypoint `parsec-server`, default command `run`: `docker run IMAGE migrate --dry-run` and
# `docker compose run parsec-server migrate` run the other commands with the same configuration.
# Configuration: PARSEC_* environment variables only (see docs/configuration.md); nothing is read from
# files inside the image. The install step is deploy/install.sh, which tests/deploy also runs.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtual environment under /opt/parsec-server -------------------------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml ./
COPY src ./src
COPY deploy/install.sh ./deploy/install.sh
RUN sh deploy/install.sh --slim /opt/parsec-server /src

# --- runtime ----------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown

LABEL org.opencontainers.image.title="parsec-server" \
      org.opencontainers.image.description="A Parsec v3 (API 5.x) server: zero-trust, end-to-end encrypted file sharing" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="AGPL-3.0-or-later" \
      org.opencontainers.image.documentation="docs/install-docker.md"

# pg_dump / pg_restore for `parsec-server backup`, `restore` and the backup `migrate` takes before it
# changes anything. Major version 15 matches the `postgres:15` service of parsec-server.docker.yaml
# (pg_dump must not be older than the server it dumps). The package name pins the major version;
# Debian security updates within it are wanted, hence no exact version pin.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client-15 \
    && rm -rf /var/lib/apt/lists/*

# An unprivileged user with fixed ids (10001), so that volume permissions are predictable and
# orchestrators can check `runAsNonRoot`. Its home holds the backups directory (a volume in compose).
RUN groupadd --system --gid 10001 parsec \
    && useradd --system --uid 10001 --gid parsec --home-dir /var/lib/parsec-server \
        --no-create-home --shell /usr/sbin/nologin parsec \
    && mkdir -p /var/lib/parsec-server/backups \
    && chown -R parsec:parsec /var/lib/parsec-server \
    && chmod 0750 /var/lib/parsec-server /var/lib/parsec-server/backups

COPY --from=build /opt/parsec-server /opt/parsec-server
COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/parsec-healthcheck

ENV PATH="/opt/parsec-server/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PARSEC_HOST=0.0.0.0 \
    PARSEC_PORT=6777 \
    PARSEC_BACKUP_DIR=/var/lib/parsec-server/backups

WORKDIR /var/lib/parsec-server
USER 10001:10001
EXPOSE 6777

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["parsec-healthcheck"]

ENTRYPOINT ["parsec-server"]
CMD ["run"]
