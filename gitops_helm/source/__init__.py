"""The source stage: where the desired state comes from.

- ``gitsource``: a Git branch followed through a local mirror, one immutable checkout per commit
  (polling with backoff, ``trigger()`` for webhooks and manual syncs);
- ``webhook``: pure verification of GitHub, Gitea/Forgejo, GitLab and generic push webhooks;
- ``watch``: a debounced file-system watch for a local working-directory source.

All git commands run in ``gitops_helm.adapters.git``.
"""
