"""The result every chart source returns: a chart on local disk, identified by its content.

Place in the flow: `charts.resolver` turns a HelmRelease's `spec.chart` into a
:class:`FetchedChart`; the reconciler hands ``path`` to helm, reads ``chart_dir`` for
`valuesFrom.chartFileRef`, and puts ``digest`` into the desired-state digest so only a real
content change upgrades a release.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FetchedChart:
    name: str
    version: str  # the resolved chart version (never a range)
    revision: str  # status.revision: chart version (repository, OCI) or commit SHA (Git)
    digest: str  # content digest of the chart (archive sha256, or tree digest for Git)
    path: Path  # what helm installs: an unpacked chart directory or a .tgz
    chart_dir: Path | None = None  # unpacked chart directory, for chartFileRef values
    changed: bool = True  # the chart differs from the one last attempted (ChartFetched phase)
