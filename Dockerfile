# gitops-helm image: the Python agent, git, ssh, tini as PID 1, and helm 4 built from the Go
# module proxy. Every version is pinned; the Python dependencies come from requirements.lock
# (hashes checked by pip: regenerate it with
#   pip-compile --generate-hashes --strip-extras --allow-unsafe -o requirements.lock pyproject.toml).
FROM golang:1.26.8-bookworm AS helm
ARG HELM_VERSION=v4.2.4
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
      helm.sh/helm/v4/cmd/helm@${HELM_VERSION}

FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/gitops-helm \
    && /opt/gitops-helm/bin/pip install --no-cache-dir --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY gitops_helm ./gitops_helm
RUN /opt/gitops-helm/bin/pip install --no-cache-dir --no-deps .

FROM python:3.11.14-slim-bookworm
# tini as PID 1: reaps the helm and git children and forwards SIGTERM to the agent
RUN apt-get update && apt-get install -y --no-install-recommends \
      git openssh-client ca-certificates tini \
    && rm -rf /var/lib/apt/lists/*
COPY --from=helm /out/helm /usr/local/bin/helm
COPY --from=build /opt/gitops-helm /opt/gitops-helm
ENV PATH=/opt/gitops-helm/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1
USER 65532:65532
# the agent's /healthz on its --listen port (GITOPS_HELM_LISTEN, default :3030)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('GITOPS_HELM_LISTEN', ':3030').rsplit(':', 1)[1]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["/usr/bin/tini", "--", "gitops-helm"]
CMD ["run", "--help"]
