"""One image automation pass: HelmRelease files in, decisions and at most one commit out.

Place in the flow: the glue of the ``images`` package. The caller (``commands`` for
``gitops-helm images list|update``, the agent's image loop for ``run --image-automation``) hands
over a checkout directory and the HelmRelease files in it (listed by ``sync.discover``, the same
files and ``--git-path``\\ s the sync reads); :meth:`ImageAutomation.plan` then

1. runs :func:`~gitops_helm.images.find.find_in_file` on each file (automations and skips);
2. lists the tags of every image repository in use with one :meth:`RegistryClient.scan` (one
   request per repository however many releases use it; locked releases are not scanned), and the
   versions of every chart repository in use through the chart clients (:class:`ChartVersions`);
3. asks the registry for the images behind candidate tags only when the policy needs their build
   time or digest (build-time ordering, ``min-age``, digest pinning), and only for tags that pass
   the filter (and, under version ordering, are newer than the current tag);
4. decides per automation (:meth:`Automation.decide`) and turns each UPDATE into a
   :class:`PlannedUpdate` whose ``rewrite`` re-applies the byte-exact edits to the file's bytes at
   commit time (:func:`rewrite_for`).

:meth:`ImageAutomation.apply` then commits the updates in one commit (or renders the diff for a
dry run) and folds what the commit engine dropped back into the per-image reports.

Errors are per image: an unreachable registry, refused credentials, an invalid filter, two
policies for one image, a file that changed shape: each is reported for its image (a log line,
``gitops_helm_image_errors_total{reason}``, the report that ``images list`` prints), nothing is
written for it, and every other update is still made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from gitops_helm import log as logging
from gitops_helm import metrics
from gitops_helm.charts.errors import ChartError
from gitops_helm.charts.helmrepo import HelmRepoClient
from gitops_helm.charts.oci import OciClient, OciCredentials
from gitops_helm.charts.oci import parse_reference as parse_oci_reference
from gitops_helm.charts.semver import VersionError, parse_version
from gitops_helm.errors import GitopsHelmError
from gitops_helm.images.commit import (
    CommitOutcome,
    EditNotApplicable,
    ImageCommitFenced,
    ImageCommitter,
    PlannedUpdate,
    Rewrite,
)
from gitops_helm.images.credentials import RegistryCredentials
from gitops_helm.images.edit import apply_edits
from gitops_helm.images.find import Automation, find_in_file
from gitops_helm.images.model import Candidate, ScalarEdit, Shape, Skip
from gitops_helm.images.policy import Action, Decision, DeclaredPolicy, Order
from gitops_helm.images.registry import (
    ImageInfo,
    ImageNotFoundError,
    ImageRepository,
    RegistryAddressRefusedError,
    RegistryAnswerError,
    RegistryClient,
    RegistryError,
    RegistryRateLimitedError,
    RegistryUnauthorizedError,
    RegistryUnreachableError,
)

__all__ = [
    "ChartVersions",
    "ImageAutomation",
    "ImageReport",
    "PassResult",
    "Plan",
    "error_reason",
    "rewrite_for",
]

log = logging.get(__name__)

ChartVersionList = tuple[tuple[str, datetime | None], ...]


@dataclass(frozen=True)
class ImageReport:
    """One automated image (or chart version): its decision, or the error that stopped it.

    ``reason`` classifies ``error`` for the metric (``unreachable``, ``unauthorized``, ...)."""

    automation: Automation
    decision: Decision | None = None
    error: str | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()

    @property
    def image(self) -> str:
        return str(self.automation.image.ref)


@dataclass(frozen=True)
class Plan:
    """What one pass found and wants to write. ``file_errors``: files that could not be read."""

    reports: tuple[ImageReport, ...]
    skips: tuple[Skip, ...]
    updates: tuple[PlannedUpdate, ...]
    file_errors: tuple[str, ...] = ()

    @property
    def errors(self) -> list[str]:
        """Every error of the pass, one line each (what makes ``images list`` exit non-zero)."""
        out = list(self.file_errors)
        out += [str(s) for s in self.skips if s.error]
        out += [_where(r) + f": {r.error}" for r in self.reports if r.error]
        return out


@dataclass(frozen=True)
class PassResult:
    """A plan after its commit (or dry run): the commit made, the diff, the final reports."""

    plan: Plan
    commit: str | None = None
    diff: str = ""
    commit_error: str | None = None
    committed: tuple[PlannedUpdate, ...] = field(default=())

    @property
    def errors(self) -> list[str]:
        out = self.plan.errors
        if self.commit_error:
            out.append(self.commit_error)
        return out


def _where(report: ImageReport) -> str:
    image = report.automation.image
    return f"{image.file}:{image.line}: HelmRelease {image.release} image {image.name!r}"


def error_reason(error: Exception) -> str:
    """The metric label of a per-image error (classified once, here)."""
    if isinstance(error, RegistryUnauthorizedError):
        return "unauthorized"
    if isinstance(error, RegistryUnreachableError):
        return "unreachable"
    if isinstance(error, ImageNotFoundError):
        return "not-found"
    if isinstance(error, RegistryRateLimitedError):
        return "rate-limited"
    if isinstance(error, RegistryAddressRefusedError):
        return "address-refused"
    if isinstance(error, RegistryAnswerError | RegistryError):
        return "bad-answer"
    if isinstance(error, ChartError):
        return "chart-repository"
    return "invalid"


class ChartVersions:
    """The versions of a chart (with their creation times where the index gives them), from a
    Helm repository's index or an OCI repository's tags, through the chart clients the
    reconciler uses (their caches and credentials: ``--repositories-file`` for Helm
    repositories, the image scan's registry logins for OCI hosts)."""

    def __init__(
        self, repos: HelmRepoClient, oci: OciClient, credentials: RegistryCredentials | None = None
    ) -> None:
        self._repos = repos
        self._oci = oci
        self.credentials = credentials or RegistryCredentials()

    def versions(self, repository: str, name: str) -> ChartVersionList:
        """Raises ``ChartError`` (or another ``GitopsHelmError``) naming the repository."""
        if repository.startswith("oci://"):
            host, repo = parse_oci_reference(repository, name)
            login = self.credentials.for_host(host)
            creds = OciCredentials(login.username, login.password) if login else OciCredentials()
            # Helm pushes a version's "+" as "_" (a tag cannot hold "+")
            return tuple((tag.replace("_", "+"), None) for tag in self._oci.tags(host, repo, creds))
        index = self._repos.index(repository, refresh=True)
        return tuple((v.version, _timestamp(v.created)) for v in index.entries.get(name, ()))


def _timestamp(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def rewrite_for(edits: Sequence[ScalarEdit]) -> Rewrite:
    """The ``rewrite`` of one update: its edits re-applied to the file as it is at commit time.

    An edit whose scalar already reads the new value is done (a concurrent commit made it, or an
    earlier attempt of this one); any other failure means the file changed shape since the scan:
    :class:`EditNotApplicable` names why and nothing of this update is written."""

    def rewrite(path: str, content: bytes) -> bytes:
        del path
        result = apply_edits(content, edits)
        problems = [
            failure
            for failure in result.failed
            if apply_edits(content, [replace(failure.edit, old=failure.edit.new)]).failed
        ]
        if problems:
            raise EditNotApplicable("; ".join(str(p) for p in problems))
        if result.failed and result.applied:
            # part of the update is there already: write only the rest
            return apply_edits(content, result.applied).data
        return result.data

    return rewrite


class ImageAutomation:
    """Plans and applies image and chart updates; one instance per process (the registry
    client's caches are what keep an unchanged repository at one request per scan)."""

    def __init__(
        self,
        registry: RegistryClient,
        charts: ChartVersions | None,
        declared: Mapping[str, DeclaredPolicy] | None = None,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.registry = registry
        self.charts = charts
        self.declared = dict(declared or {})
        self._clock = clock

    def set_credentials(self, credentials: RegistryCredentials) -> None:
        """New registry logins (pull Secrets re-read) for image scans and OCI chart listings."""
        self.registry.set_credentials(credentials)
        if self.charts is not None:
            self.charts.credentials = credentials

    # -- planning -----------------------------------------------------------------------------

    def plan(self, root: Path, files: Iterable[str]) -> Plan:
        """Read ``files`` (relative to ``root``), scan, decide; nothing is written."""
        automations: list[Automation] = []
        skips: list[Skip] = []
        errors: list[str] = []
        for rel in files:
            try:
                data = (root / rel).read_bytes()
            except OSError as exc:
                errors.append(f"{rel}: cannot read the file: {exc.strerror or exc}")
                continue
            findings = find_in_file(rel, data, self.declared)
            automations += findings.automations
            skips += findings.skips
        now = self._clock()
        reports = self._decide_images([a for a in automations if a.image.shape is not Shape.CHART], now)
        reports += self._decide_charts([a for a in automations if a.image.shape is Shape.CHART], now)
        reports.sort(
            key=lambda r: (r.automation.image.file, r.automation.image.line, r.automation.image.name)
        )
        updates = tuple(_planned(r) for r in reports if r.decision and r.decision.action is Action.UPDATE)
        return Plan(tuple(reports), tuple(skips), updates, tuple(errors))

    def _decide_images(self, automations: Sequence[Automation], now: datetime) -> list[ImageReport]:
        reports: list[ImageReport] = []
        wanted: dict[int, ImageRepository] = {}
        for index, automation in enumerate(automations):
            if automation.settings.locked:
                reports.append(ImageReport(automation, automation.decide((), now)))
                continue
            try:
                wanted[index] = ImageRepository.parse(automation.image.ref.name)
            except ValueError as exc:
                reports.append(ImageReport(automation, error=str(exc), reason="invalid"))
        scans = self.registry.scan(set(wanted.values())) if wanted else {}
        for index, repository in wanted.items():
            automation = automations[index]
            scan = scans[repository]
            if scan.error is not None or scan.tags is None:
                error = scan.error or RegistryAnswerError(repository, "no tag list")
                reports.append(ImageReport(automation, error=str(error), reason=error_reason(error)))
                continue
            reports.append(self._decide_image(automation, repository, scan.tags.tags, now))
        return reports

    def _decide_image(
        self, automation: Automation, repository: ImageRepository, tags: Sequence[str], now: datetime
    ) -> ImageReport:
        policy = automation.policy
        current = automation.image.ref.tag
        needs_info = policy.filter.order is Order.BUILD_TIME or policy.min_age is not None
        pinning = policy.pin_digest or bool(automation.image.ref.digest)
        if not needs_info and not pinning:
            return ImageReport(automation, automation.decide([Candidate(t) for t in tags], now))
        lookup = [t for t in tags if policy.filter.matches(t)]
        if policy.filter.order is Order.VERSION:
            lookup = [t for t in lookup if t == current or _newer_version(t, current)]
        if policy.filter.order is Order.BUILD_TIME and current in tags:
            lookup.append(current)  # its build time places it among the candidates
        infos = self.registry.images(repository, lookup) if lookup else {}
        candidates: list[Candidate] = []
        notes: list[str] = []
        failed: list[RegistryError] = []
        looked_up = set(infos)
        for tag in tags:
            info = infos.get(tag)
            if isinstance(info, ImageInfo):
                candidates.append(Candidate(tag, info.digest, info.created))
            elif isinstance(info, RegistryError):
                failed.append(info)
                notes.append(f"tag {tag} left out: {info.detail}")
            elif tag not in looked_up:
                candidates.append(Candidate(tag))
        if lookup and len(failed) == len(lookup):
            error = failed[0]  # no candidate could be read: the registry is the problem, say so
            return ImageReport(automation, error=str(error), reason=error_reason(error), notes=tuple(notes))
        return ImageReport(automation, automation.decide(candidates, now), notes=tuple(notes))

    def _decide_charts(self, automations: Sequence[Automation], now: datetime) -> list[ImageReport]:
        reports: list[ImageReport] = []
        listed: dict[tuple[str, str], ChartVersionList | GitopsHelmError] = {}
        for automation in automations:
            if automation.settings.locked:
                reports.append(ImageReport(automation, automation.decide((), now)))
                continue
            if self.charts is None:
                reports.append(
                    ImageReport(automation, error="chart versions cannot be listed here", reason="invalid")
                )
                continue
            key = (automation.image.ref.registry, automation.image.ref.repository)
            if key not in listed:  # one listing per chart however many releases use it
                try:
                    listed[key] = self.charts.versions(*key)
                except GitopsHelmError as exc:
                    log.warning("chart version scan failed", repository=key[0], chart=key[1], error=str(exc))
                    listed[key] = exc
            versions = listed[key]
            if isinstance(versions, GitopsHelmError):
                reports.append(ImageReport(automation, error=str(versions), reason=error_reason(versions)))
                continue
            candidates = [Candidate(version, "", created) for version, created in versions]
            reports.append(ImageReport(automation, automation.decide(candidates, now)))
        return reports

    # -- applying -----------------------------------------------------------------------------

    def apply(self, plan: Plan, committer: ImageCommitter, *, dry_run: bool = False) -> PassResult:
        """Commit the plan's updates in one commit (none when nothing changes), or with
        ``dry_run`` only render the diff. Reports, logs and counts every error of the pass."""
        result = PassResult(plan)
        if plan.updates:
            try:
                if dry_run:
                    result = replace(result, diff=committer.render_diff(plan.updates))
                else:
                    result = self._commit(plan, committer.commit(plan.updates))
            except GitopsHelmError as exc:
                message = f"image updates not committed: {exc}"
                result = replace(result, commit_error=message)
                log.error("image updates not committed", error=str(exc))
                reason = "fenced" if isinstance(exc, ImageCommitFenced) else "commit"
                metrics.IMAGE_ERRORS.labels(reason=reason).inc()
        _record(result.plan, dry_run=dry_run)
        metrics.IMAGE_SCANS.labels(result="error" if result.errors else "ok").inc()
        return result

    @staticmethod
    def _commit(plan: Plan, outcome: CommitOutcome) -> PassResult:
        dropped = {id(d.update): d.error for d in outcome.dropped}
        reports = []
        for report in plan.reports:
            update = next((u for u in plan.updates if _same(u, report)), None)
            error = dropped.get(id(update)) if update is not None else None
            reports.append(replace(report, error=error, reason="changed-shape") if error else report)
        for update in outcome.applied:
            metrics.IMAGE_UPDATES.labels(kind=update.kind).inc()
        return PassResult(
            replace(plan, reports=tuple(reports)), commit=outcome.commit, committed=outcome.applied
        )


def _report_order(report: ImageReport) -> tuple[str, int, str]:
    image = report.automation.image
    return image.file, image.line, image.name


def _newer_version(tag: str, current: str) -> bool:
    try:
        return parse_version(tag) > parse_version(current)
    except VersionError:
        return True  # the current tag is not a version: every matching tag is a candidate


def _same(update: PlannedUpdate, report: ImageReport) -> bool:
    image = report.automation.image
    return (
        update.path == image.file
        and update.release == str(image.release)
        and update.old == _version_text(image.ref.tag, image.ref.digest)
        and update.subject == _subject(report.automation)
    )


def _version_text(tag: str, digest: str) -> str:
    return f"{tag}@{digest}" if digest else tag


def _subject(automation: Automation) -> str:
    ref = automation.image.ref
    if automation.image.shape is Shape.CHART:
        return ref.repository
    return str(ref.with_version("", ""))


def _planned(report: ImageReport) -> PlannedUpdate:
    decision = report.decision
    assert decision is not None  # noqa: S101 - plan() passes UPDATE decisions only
    image = report.automation.image
    return PlannedUpdate(
        path=image.file,
        release=str(image.release),
        subject=_subject(report.automation),
        old=_version_text(image.ref.tag, image.ref.digest),
        new=_version_text(decision.tag, decision.digest),
        rewrite=rewrite_for(image.edits(decision.tag, decision.digest)),
        kind="chart" if image.shape is Shape.CHART else "image",
    )


def _record(plan: Plan, *, dry_run: bool) -> None:
    """Log every decision and error of a pass; count the errors by reason."""
    for skip in plan.skips:
        if skip.error:
            log.warning("image not automated", problem=str(skip))
            metrics.IMAGE_ERRORS.labels(reason="invalid").inc()
    for problem in plan.file_errors:
        log.warning("image automation cannot read a file", problem=problem)
        metrics.IMAGE_ERRORS.labels(reason="file").inc()
    for report in plan.reports:
        image = report.automation.image
        fields = {"file": image.file, "release": str(image.release), "image": report.image}
        if report.error:
            log.warning("image not updated", **fields, reason=report.reason, error=report.error)
            metrics.IMAGE_ERRORS.labels(reason=report.reason).inc()
        elif report.decision is not None and report.decision.action is not Action.KEEP:
            log.info(
                "image decision",
                **fields,
                action=str(report.decision.action),
                new=report.decision.tag,
                reason=report.decision.reason,
                dry_run=dry_run,
            )
