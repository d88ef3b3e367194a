# bucketwarden operator image: `make image` builds it, `make image-test` builds and runs it (tools/image.sh).
# The install steps are the README's ("The image: build, test, push"); tests/chart/test_dockerfile.py keeps them
# equal and replays this file's builder steps in a fresh venv.
#
# For production, pin the base by digest, so that a rebuild cannot change it under you:
#   --build-arg BASE_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
# `docker buildx imagetools inspect python:3.11-slim-bookworm` prints the digest of today's image.
# Where no registry is reachable, tools/image.sh builds on a debootstrapped bookworm + python3 stand-in instead.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator/ ./operator/
# Nothing at run time needs pip or setuptools: they leave the venv once it is installed.
RUN pip install --no-cache-dir -c constraints.txt . \
 && pip uninstall --yes pip setuptools


FROM ${BASE_IMAGE}

# A passwd entry for the numeric user: getpass.getuser() (kopf uses it) fails without one.
RUN groupadd --system --gid 65532 bucketwarden \
 && useradd --system --no-log-init --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin bucketwarden

# Only the virtualenv: no compilers, no pip, no sources, no tests.
COPY --from=builder /opt/venv /opt/venv

# Runs with a read-only root filesystem: no bytecode writes, HOME and temp files on the /tmp emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

# Last, so that a new commit (REVISION) rebuilds only this metadata, not the layers above.
ARG BASE_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown

LABEL org.opencontainers.image.title="bucketwarden" \
      org.opencontainers.image.description="Kubernetes operator that keeps S3 bucket policies IP-restricted without breaking AWS Backup" \
      org.opencontainers.image.source="https://github.com/bucketwarden/bucketwarden" \
      org.opencontainers.image.url="https://github.com/bucketwarden/bucketwarden" \
      org.opencontainers.image.documentation="https://github.com/bucketwarden/bucketwarden#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="bucketwarden authors" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

USER 65532:65532
WORKDIR /tmp
# 8080: Prometheus /metrics. 8081: liveness at GET /healthz (BUCKETWARDEN_HEALTH_PORT), which the chart's
# livenessProbe and readinessProbe call. No HEALTHCHECK: Kubernetes ignores it, and the same image runs
# one-shot commands (audit, bootstrap) that serve no endpoint.
EXPOSE 8080 8081
ENTRYPOINT ["bucketwarden"]
CMD ["run"]
