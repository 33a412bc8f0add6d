# gitops-helm image: the Python agent, git, ssh, and helm 4 built from the Go module proxy.
FROM golang:1.26-bookworm AS helm
ARG HELM_VERSION=v4.2.4
RUN CGO_ENABLED=0 GOBIN=/out go install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
      helm.sh/helm/v4/cmd/helm@${HELM_VERSION}

FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=helm /out/helm /usr/local/bin/helm
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gitops_helm ./gitops_helm
RUN pip install --no-cache-dir . && rm -rf /src
USER 65532:65532
ENV HOME=/tmp
ENTRYPOINT ["gitops-helm"]
CMD ["run", "--help"]
