# syntax=docker/dockerfile:1
# One image for every vpcnet process; the entry point is chosen by the command:
#   watcher       vpcnet watcher
#   worker        celery -A workers worker -E
#   beat          celery -A workers beat
#   flower        celery -A workers flower
#   agent         vpcnet agent            (DaemonSet; root, NET_ADMIN/NET_RAW/SYS_ADMIN)
#   install-cni   vpcnet install-cni      (DaemonSet init container)
#   emulators     vpcnet sim ec2 | vpcnet sim kube   (docker-compose, local development)
# Build: docker build -t ghcr.io/vpcnet/vpcnet:0.1.0 .   (multi-arch: docker buildx --platform)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: wheels for the package and its dependencies, and the static CNI launcher ---
FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY vpcnet ./vpcnet
COPY workers ./workers
COPY beat ./beat
# The sim extra: the emulators docker-compose runs from this same image.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[sim]"
# The launcher kubelet execs on hosts without Python: static, so it needs nothing there
# (vpcnet/install/launcher.py looks for it at <sys.prefix>/libexec/vpcnet/).
RUN mkdir -p /out/libexec/vpcnet \
 && gcc -static -Os -s -Wall -o /out/libexec/vpcnet/vpcnet-cni-launcher vpcnet/install/launcher.c

# --- runtime ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# iptables + iproute2: the agent's SNAT chain and `ip`; nothing else is installed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables iproute2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels "vpcnet[sim]" \
 && rm -rf /wheels
COPY --from=build /out/libexec/vpcnet/vpcnet-cni-launcher /usr/local/libexec/vpcnet/vpcnet-cni-launcher
# Control-plane processes run unprivileged; the agent's pod spec sets runAsUser: 0.
USER 65532:65532
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
CMD ["vpcnet", "--help"]
