"""Image and chart update automation (issue #10): not built yet; this is its room.

Planned shape: registry scans through ``adapters.http``, tag policies, image references found in
HelmRelease values, byte-exact YAML edits, and commits pushed through ``adapters.git``. It sits
beside ``charts``, ``values`` and ``source`` in the layers contract, below the two wings.
"""
