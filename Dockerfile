# syntax=docker/dockerfile:1
# Two images, one per role. Both hold one virtualenv at /usr/local/vpcnet (on PATH),
# filled by scripts/install-image.sh (the same script the runtime test runs).
#
#   runtime (the last stage: what a plain `docker build` gives): the product only, used by
#           every manifest (make image):
#             watcher       vpcnet watcher
#             worker        celery -A workers worker -E
#             beat          celery -A workers beat
#             flower        celery -A workers flower
#             agent         vpcnet agent            (DaemonSet; root, NET_ADMIN/NET_RAW/SYS_ADMIN)
#             install-cni   vpcnet install-cni      (DaemonSet init container)
#   dev     runtime + the vpcnet-sim harness; docker-compose's emulators (vpcnet sim ec2 |
#           vpcnet sim kube) and local work (make image-dev)
#
# Build: docker build --target runtime -t ghcr.io/vpcnet/vpcnet:0.1.0 .
#        docker build --target dev -t ghcr.io/vpcnet/vpcnet-dev:0.1.0 .
#        (multi-arch: docker buildx --platform)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: a C compiler (the static launcher) and the sources --------------------
FROM ${PYTHON_IMAGE} AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/install-image.sh ./scripts/
COPY vpcnet ./vpcnet
COPY workers ./workers
COPY beat ./beat

FROM builder AS build-runtime
RUN bash scripts/install-image.sh runtime /usr/local/vpcnet

FROM builder AS build-dev
COPY vpcnet_sim ./vpcnet_sim
RUN bash scripts/install-image.sh dev /usr/local/vpcnet

# --- what both images run on ----------------------------------------------------------
# Not under /opt/vpcnet: the agent DaemonSet mounts the host's plugin runtime there.
FROM ${PYTHON_IMAGE} AS base
# iptables + iproute2: the agent's SNAT chain and `ip`; nothing else is installed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/vpcnet/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
CMD ["vpcnet", "--help"]

FROM base AS dev
COPY --from=build-dev /usr/local/vpcnet /usr/local/vpcnet
USER 65532:65532

# Last, so it is the default target.
FROM base AS runtime
COPY --from=build-runtime /usr/local/vpcnet /usr/local/vpcnet
# Control-plane processes run unprivileged; the agent's pod spec sets runAsUser: 0.
USER 65532:65532
