"""The CLI verbs that look at and drive a running agent, in the shape of the ``flux`` CLI.

``get``/``status`` (tables of HelmReleases and the Git sync state), ``reconcile``, ``suspend``,
``resume``, ``events``, ``check``. ``flags`` is argparse only (``cli`` imports it at start);
``table`` is pure presentation; the other modules talk to the cluster through the adapters.
"""
