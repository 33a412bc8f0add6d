"""The doors to the outside world: every helm, git, Kubernetes and HTTP call goes through here.

Each adapter runs its library or subprocess with deadlines, maps its failures ONCE onto the
package's error tree (``errors.GitopsHelmError`` with ``temporary``), and is the only module
allowed to import that library (import-linter holds this).
"""
