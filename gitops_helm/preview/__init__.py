"""``gitops-helm plan``: what a Git commit would do to the cluster, computed by the agent's own code.

``report`` is the pure model and its formats (table, markdown, JSON), ``objects`` the pure object
comparison and redaction, ``planner`` reads the cluster and renders (the only part with I/O).
"""
