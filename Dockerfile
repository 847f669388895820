# The drillctl image the Helm chart (charts/drillctl) runs: drillctl, the pinned toxiproxy-server for
# drills that start a private one, and the shipped drills, runbooks and demo programs in /opt/drillctl.
#   docker build -t drillctl:0.1.0 .
# Runs as a non-root user and works with a read-only root filesystem (it writes to its runs folder and /tmp).
# The base images are build arguments, so the image can be built from local ones where no registry is
# reachable (scripts/k8s/drillctl-image.sh does, for the test cluster's real node); the defaults are these.
ARG GO_IMAGE=golang:1.25-bookworm
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${GO_IMAGE} AS toxiproxy
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath -ldflags="-s -w -X github.com/Shopify/toxiproxy/v2.Version=2.12.0" \
      github.com/Shopify/toxiproxy/v2/cmd/server@v2.12.0 \
 && mv /out/server /out/toxiproxy-server

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
RUN python -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends faketime \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --home-dir /tmp --no-create-home drillctl
COPY --from=build /opt/venv /opt/venv
COPY --from=toxiproxy /out/toxiproxy-server /usr/local/bin/toxiproxy-server
COPY drills /opt/drillctl/drills
COPY runbooks /opt/drillctl/runbooks
COPY demo /opt/drillctl/demo
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    NO_COLOR=1 \
    HOME=/tmp
WORKDIR /opt/drillctl
USER 10001:10001
ENTRYPOINT ["drillctl"]
CMD ["--help"]
