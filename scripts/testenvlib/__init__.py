"""The local test environment of gitops-helm (``scripts/testenv``).

Everything here is real and runs on loopback: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok (a control plane whose pods become Ready through kwok stages), helm 3 and
helm 4, a Git server over smart HTTP and SSH, a Helm chart repository over HTTP and HTTPS with basic
auth, and an OCI registry. The pytest fixtures in ``tests/conftest.py`` drive the same code.

Only the Python standard library and the ``openssl`` CLI are used, so ``scripts/testenv`` runs with
any Python 3.11+ before the project's virtualenv exists.
"""
