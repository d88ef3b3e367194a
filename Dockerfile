# bucketwarden operator image. The install step is the README's: `pip install -c constraints.txt .`,
# and tests/chart/test_dockerfile.py replays this file's pip install lines in a fresh venv.

FROM python:3.11.7-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY operator/ ./operator/
RUN pip install --no-cache-dir -c constraints.txt .


FROM python:3.11.7-slim-bookworm

LABEL org.opencontainers.image.title="bucketwarden" \
      org.opencontainers.image.description="Kubernetes operator that keeps S3 bucket policies IP-restricted without breaking AWS Backup" \
      org.opencontainers.image.source="https://github.com/bucketwarden/bucketwarden" \
      org.opencontainers.image.url="https://github.com/bucketwarden/bucketwarden" \
      org.opencontainers.image.documentation="https://github.com/bucketwarden/bucketwarden#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="bucketwarden authors" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.7-slim-bookworm"

# A passwd entry for the numeric user: getpass.getuser() (kopf uses it) fails without one.
RUN groupadd --system --gid 65532 bucketwarden \
 && useradd --system --no-log-init --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin bucketwarden

# Only the virtualenv: no compilers, no pip cache, no sources.
COPY --from=builder /opt/venv /opt/venv

# Runs with a read-only root filesystem: no bytecode writes, HOME and temp files on the /tmp emptyDir.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 8081
ENTRYPOINT ["bucketwarden", "run"]
