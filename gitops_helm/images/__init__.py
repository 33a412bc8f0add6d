"""Image and chart update automation (issue #10).

Pure part (no I/O; import-linter keeps it so): ``model`` (references, candidates, found images,
skips, scalar edits), ``locate`` (YAML nodes with byte spans, ruamel.yaml's composer), ``find``
(images in HelmRelease values: Flux v1 shapes, annotation mappings, Flux v2 setter markers, chart
versions), ``policy`` (filters, orderings, min-age, digest pinning, the decision), ``edit``
(byte-exact scalar replacement). The registry client and the commit/push engine sit beside them.
The package is a wing beside ``release`` and ``sync``: it may use ``charts`` (semver), ``source``
and the adapters.
"""
