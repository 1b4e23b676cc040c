# syntax=docker/dockerfile:1
# balance-sink image: one wheel plus exactly the dependency versions in requirements.lock
# (hashes checked), on the same slim Python as the build stage, run as a non-root user.
#
#   docker build -t balance-sink:0.1.0 .
#   docker run --rm balance-sink:0.1.0 --version
#
# After changing pyproject.toml's dependencies, regenerate the locks: deploy/lock.sh

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
# Dependencies first, so that a code change reuses this layer.
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/balance-sink \
 && /opt/balance-sink/bin/pip install --no-deps --require-hashes -r requirements.lock \
 && python -m venv /opt/build \
 && /opt/build/bin/pip install --no-deps --require-hashes -r requirements-build.lock
# The rest of the context: .dockerignore allow-lists pyproject.toml, README.md and worker/.
COPY . ./
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/balance-sink/bin/pip install --no-deps /wheels/*.whl \
 && /opt/balance-sink/bin/pip check \
 && /opt/balance-sink/bin/balance-sink --version

FROM ${PYTHON_IMAGE} AS runtime
ARG UID=10001
RUN groupadd --system --gid "${UID}" balance-sink \
 && useradd --system --uid "${UID}" --gid "${UID}" --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin balance-sink
COPY --from=build /opt/balance-sink /opt/balance-sink
ENV PATH=/opt/balance-sink/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="balance-sink" \
      org.opencontainers.image.description="Kafka consumer-group worker writing trade settlements as TDengine ledger rows" \
      org.opencontainers.image.licenses="Apache-2.0"
USER ${UID}:${UID}
WORKDIR /tmp
EXPOSE 9108
# Liveness of the worker's metrics server; honours BALANCE_SINK_METRICS__PORT like the worker.
# urlopen raises on connection errors and on any non-2xx answer, so the exit code is the verdict.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BALANCE_SINK_METRICS__PORT', '9108'), timeout=2)"]
ENTRYPOINT ["balance-sink"]
CMD ["run", "--config", "/etc/balance-sink/config.toml"]
