"""Chart sources: turn a HelmRelease's ``spec.chart`` into a chart directory on local disk.

``resolver`` picks the source: a Helm repository (``helmrepo`` + ``repoindex``), an OCI registry
(``oci``), a Git repository (``gitchart``) or a helm downloader plugin; ``cache`` stores archives
by content digest and extracts them safely; ``auth`` reads pull Secrets and repositories.yaml;
``semver`` resolves Helm version constraints; ``errors`` classifies what can go wrong.
"""
