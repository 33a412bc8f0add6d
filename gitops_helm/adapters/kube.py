"""The Kubernetes API boundary: every API call of the product goes through this module.

Place in the flow: the controller, the reconciler and the Git sync read and write the cluster only
through :class:`Kube`. It wraps the official ``kubernetes`` client (typed calls for core objects,
``CustomObjectsApi`` for HelmReleases, the dynamic client for server-side apply of arbitrary
manifests) and classifies every failure ONCE into :class:`KubeError` kinds, so no caller matches on
status codes or error strings. Every request carries a timeout.

It also reads Helm's release storage (``sh.helm.release.v1.*`` Secrets) directly: the labels tell
the latest revision, its status and the labels the agent put on it, which is how an unchanged
release costs no helm call at all.
"""

from __future__ import annotations

import base64
import copy
import enum
import gzip
import json
import os
import re
import socket
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import urllib3
from kubernetes import client, config, dynamic, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.discovery import LazyDiscoverer
from kubernetes.dynamic.exceptions import (
    DynamicApiError,
    ResourceNotFoundError,
    ResourceNotUniqueError,
)

from gitops_helm import metrics
from gitops_helm.adapters.recent_events import RecentEvents, Written, event_key
from gitops_helm.api.model import GROUP, PLURAL, VERSION
from gitops_helm.errors import GitopsHelmError


class KubeErrorKind(enum.Enum):
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"  # 409: stale resourceVersion or SSA field conflict
    INVALID = "invalid"  # 400/422: the object is malformed or rejected by validation/admission
    FORBIDDEN = "forbidden"  # 401/403: RBAC
    GONE = "gone"  # 410: a watch's resourceVersion is too old; re-list
    NO_KIND = "no-kind"  # the API server does not serve this apiVersion/kind
    TEMPORARY = "temporary"  # 429, 5xx, connection errors, timeouts


class KubeError(GitopsHelmError):
    """A classified Kubernetes API failure: ``kind`` says what happened, ``what`` the request."""

    def __init__(self, kind: KubeErrorKind, what: str, message: str) -> None:
        super().__init__(f"{what}: {message}")
        self.kind = kind
        self.what = what
        self.message = message
        self.temporary = kind is KubeErrorKind.TEMPORARY


_STATUS_KINDS = {
    404: KubeErrorKind.NOT_FOUND,
    409: KubeErrorKind.CONFLICT,
    400: KubeErrorKind.INVALID,
    422: KubeErrorKind.INVALID,
    401: KubeErrorKind.FORBIDDEN,
    403: KubeErrorKind.FORBIDDEN,
    410: KubeErrorKind.GONE,
}


def _api_message(body: Any) -> str:
    try:
        data = json.loads(body) if isinstance(body, str | bytes) else body
        return str(data.get("message") or data)
    except (ValueError, AttributeError, TypeError):
        return str(body)[:500]


def _classify(exc: BaseException, what: str) -> KubeError:
    if isinstance(exc, KubeError):
        return exc
    if isinstance(exc, ApiException | DynamicApiError):
        status = int(getattr(exc, "status", 0) or 0)
        kind = _STATUS_KINDS.get(status, KubeErrorKind.TEMPORARY)
        return KubeError(kind, what, f"{status} {_api_message(getattr(exc, 'body', '') or exc)}")
    if isinstance(exc, ResourceNotFoundError | ResourceNotUniqueError):
        return KubeError(KubeErrorKind.NO_KIND, what, str(exc))
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return KubeError(KubeErrorKind.TEMPORARY, what, f"{type(exc).__name__}: {exc}")
    raise exc


@dataclass(frozen=True)
class KubeSettings:
    kubeconfig: str | None = None
    context: str | None = None
    request_timeout_s: float = 30.0  # the longest wait for the next bytes of any answer
    connect_timeout_s: float = 10.0
    watch_timeout_s: int = 300  # server-side timeout of one watch request
    # TCP keepalive on every connection (as client-go: 30 s idle), so a peer that vanished without
    # closing (a NAT or load balancer dropped the flow) is noticed on idle connections
    keepalive_idle_s: int = 30
    keepalive_interval_s: int = 15
    keepalive_count: int = 9
    # impersonating clients kept (least recently used first out, closed when evicted)
    max_identities: int = 64
    # Events remembered so that a repeat increments its count instead of creating a new object
    recent_events: int = 1024
    # a Helm release record (a storage Secret: at most 1 MiB, gzip inside) decoded to at most this
    # many bytes: a real one is well under it; a hostile one (a gzip bomb in a tenant's namespace)
    # is refused before it can exhaust the agent's memory
    max_release_record_bytes: int = 128 * 1024 * 1024


@dataclass(frozen=True)
class StoredRelease:
    """One revision of a Helm release as its storage Secret's labels describe it."""

    name: str
    namespace: str
    revision: int
    status: str
    labels: Mapping[str, str]
    secret_name: str
    created: float | None = None  # the Secret's metadata.creationTimestamp, epoch seconds


#: The Accept header of a metadata-only list: the API server answers with a
#: PartialObjectMetadataList (names, labels, timestamps; no data), or, a server that cannot, with
#: the whole list (the same metadata is read from it).
METADATA_ONLY = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json"


def _json_body(answer: Any, read: str, what: str) -> Any:
    """The JSON body of an answer requested with ``_preload_content=False`` (an HTTP response
    whose status was already checked), its size counted as Helm storage ``read``; the connection
    goes back to the pool. Raises urllib3's errors (a broken or timed-out read), and KubeError
    TEMPORARY for a body that is not JSON (not what an API server sends: a proxy's page)."""
    try:
        body = answer.data
    finally:
        answer.release_conn()
    metrics.HELM_STORAGE_READ_BYTES.labels(read=read).inc(len(body))
    try:
        return json.loads(body)
    except ValueError as exc:
        raise KubeError(KubeErrorKind.TEMPORARY, what, f"the answer is not JSON: {exc}") from None


def _epoch_seconds(value: datetime | str | None) -> float | None:
    """A metadata timestamp (the client's datetime, or RFC 3339 text) as epoch seconds."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def decode_release_record(raw: str, max_bytes: int) -> dict[str, Any]:
    """A Helm storage record (``data.release``: base64 of base64 of gzip of JSON, or of JSON) as a
    dict, decompressed to at most ``max_bytes``. Raises ValueError naming what is wrong."""
    payload = base64.b64decode(base64.b64decode(raw))
    if payload[:2] == b"\x1f\x8b":
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
        try:
            payload = inflate.decompress(payload, max_bytes + 1)
        except zlib.error as exc:
            raise ValueError(f"not valid gzip: {exc}") from None
        if len(payload) > max_bytes:
            raise ValueError(f"the record decompresses to more than {max_bytes} bytes")
    try:
        record = json.loads(payload)
    except RecursionError:
        raise ValueError("the record is nested too deeply") from None
    if not isinstance(record, dict):
        raise ValueError(f"the record is a JSON {type(record).__name__}, not an object")
    return record


def stored_revisions(listed: Any, namespace: str, release: str) -> list[StoredRelease]:
    """The revisions (oldest first) that a list of ``release``'s storage Secrets describes, as
    the API server sends it (JSON: a PartialObjectMetadataList or a SecretList); an item without
    a name or with a ``version`` label that is not a number is not a revision and is left out."""
    items = listed.get("items") if isinstance(listed, dict) else None
    out = []
    for item in items if isinstance(items, list) else []:
        meta = item.get("metadata") if isinstance(item, dict) else None
        if not isinstance(meta, dict) or not meta.get("name"):
            continue
        found = meta.get("labels")
        labels = {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
        try:
            revision = int(labels.get("version", "0"))
        except ValueError:
            continue
        created = meta.get("creationTimestamp")
        out.append(
            StoredRelease(
                name=release,
                namespace=namespace,
                revision=revision,
                status=labels.get("status", "unknown"),
                labels=labels,
                secret_name=str(meta["name"]),
                created=_epoch_seconds(created if isinstance(created, str) else None),
            )
        )
    return sorted(out, key=lambda r: r.revision)


class Kube:
    """The agent's connection to one cluster, as the agent or (:meth:`impersonating`) as a user."""

    def __init__(
        self, settings: KubeSettings, *, _base: Kube | None = None, _user: str | None = None
    ) -> None:
        self.settings = settings
        self.user = _user  # None: the agent's own identity
        if _base is None:
            cfg = client.Configuration()
            try:
                if settings.kubeconfig or not _in_cluster():
                    config.load_kube_config(
                        config_file=settings.kubeconfig, context=settings.context, client_configuration=cfg
                    )
                else:
                    config.load_incluster_config(client_configuration=cfg)
            except (config.ConfigException, OSError) as exc:
                raise KubeError(KubeErrorKind.FORBIDDEN, "kubeconfig", str(exc)) from None
            cfg.retries = 1
            cfg.socket_options = _keepalive_socket_options(settings)
        else:
            # the same server, credentials (a refreshed token included) and TLS; a pool of its own
            cfg = copy.copy(_base.configuration)
        self.configuration: client.Configuration = cfg
        self.api = client.ApiClient(cfg)
        if _user is not None:
            self.api.set_default_header("Impersonate-User", _user)
        _default_request_timeout(self.api, (settings.connect_timeout_s, settings.request_timeout_s))
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self._dynamic: dynamic.DynamicClient | None = None
        self._t = settings.request_timeout_s
        self._identities: OrderedDict[str, Kube] = OrderedDict()  # least recently used first
        # one memory of written Events for the agent and every identity it impersonates
        self._recent_events: RecentEvents = (
            _base._recent_events if _base is not None else RecentEvents(settings.recent_events)
        )
        self._identities_lock = threading.Lock()

    def impersonating(self, user: str) -> Kube:
        """A client whose every request acts as ``user`` (``Impersonate-User``), made once per user.

        Each identity has its own ``ApiClient`` (connection pool, discovery cache, headers), never
        shared with another identity, and the same timeouts as this one. At most
        ``settings.max_identities`` are kept: the least recently used is closed and dropped.
        Only the user is sent:
        for a ServiceAccount user (``system:serviceaccount:NS:NAME``) the API server adds the groups
        a real token of that ServiceAccount has (``system:serviceaccounts``,
        ``system:serviceaccounts:NS``, ``system:authenticated``) and checks the ``impersonate``
        verb on that one ``serviceaccounts`` object; naming groups too would need ``impersonate``
        on ``groups``, a right that reaches ``system:masters``.
        """
        if self.user is not None:
            raise ValueError("an impersonating client cannot impersonate again")
        evicted: list[Kube] = []
        with self._identities_lock:
            found = self._identities.get(user)
            if found is None:
                found = self._identities[user] = Kube(self.settings, _base=self, _user=user)
                while len(self._identities) > max(1, self.settings.max_identities):
                    evicted.append(self._identities.popitem(last=False)[1])
            self._identities.move_to_end(user)
        for old in evicted:
            old.close()
        return found

    def close(self) -> None:
        """Close the connection pool (and those of the impersonating clients made from this one).

        A request still under way finishes (its connection is dropped afterwards) and a later
        request opens a new pool: an evicted impersonating client that a run still holds keeps
        working, it just no longer keeps connections open."""
        with self._identities_lock:
            others = list(self._identities.values())
            self._identities.clear()
        for other in others:
            other.close()
        self.api.close()

    # -- HelmReleases -------------------------------------------------------------------

    def list_helmreleases(
        self, namespace: str | None = None, label_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """All HelmReleases (in ``namespace`` or everywhere; only those matching
        ``label_selector``, filtered by the API server) and the list's resourceVersion."""
        what = "list helmreleases"
        extra: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        try:
            if namespace:
                res = self.custom.list_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, _request_timeout=self._t, **extra
                )
            else:
                res = self.custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, _request_timeout=self._t, **extra
                )
        except Exception as exc:
            raise _classify(exc, what) from None
        data = cast(dict[str, Any], res)
        return list(data.get("items", [])), str(data.get("metadata", {}).get("resourceVersion", ""))

    def watch_helmreleases(
        self, namespace: str | None, resource_version: str, label_selector: str = ""
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch events ``(type, object)`` from ``resource_version``; ends after the watch timeout.

        With ``label_selector``, the API server sends only matching objects, and an object whose
        labels stop matching comes as DELETED (one that starts matching, as ADDED)."""
        w = watch.Watch()
        extra: dict[str, Any] = {"label_selector": label_selector} if label_selector else {}
        if namespace:
            fn: Any = self.custom.list_namespaced_custom_object
            args: tuple[Any, ...] = (GROUP, VERSION, namespace, PLURAL)
        else:
            fn = self.custom.list_cluster_custom_object
            args = (GROUP, VERSION, PLURAL)
        try:
            for ev in w.stream(
                fn,
                *args,
                resource_version=resource_version,
                timeout_seconds=self.settings.watch_timeout_s,
                allow_watch_bookmarks=True,
                _request_timeout=self.settings.watch_timeout_s + 30,
                **extra,
            ):
                etype = str(ev.get("type"))
                obj = ev.get("object")
                if etype == "ERROR":
                    code = int((obj or {}).get("code", 0) or 0)
                    kind = KubeErrorKind.GONE if code == 410 else KubeErrorKind.TEMPORARY
                    raise KubeError(kind, "watch helmreleases", str((obj or {}).get("message", obj)))
                yield etype, cast(dict[str, Any], obj)
        except KubeError:
            raise
        except Exception as exc:
            raise _classify(exc, "watch helmreleases") from None
        finally:
            w.stop()

    def get_helmrelease(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return cast(
                dict[str, Any],
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _request_timeout=self._t
                ),
            )
        except Exception as exc:
            err = _classify(exc, f"get helmrelease {namespace}/{name}")
            if err.kind is KubeErrorKind.NOT_FOUND:
                return None
            raise err from None

    def patch_helmrelease_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Merge-patch the status subresource (one write per reconcile step)."""
        try:
            self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": dict(status)},
                _request_timeout=self._t,
                _content_type="application/merge-patch+json",
            )
        except Exception as exc:
            raise _classify(exc, f"patch status of helmrelease {namespace}/{name}") from None

    def set_helmrelease_finalizers(
        self, namespace: str, name: str, finalizers: list[str], resource_version: str
    ) -> dict[str, Any]:
        """Replace the finalizer list, guarded by resourceVersion (a conflict raises CONFLICT)."""
        body = {"metadata": {"finalizers": finalizers, "resourceVersion": resource_version}}
        try:
            return cast(
                dict[str, Any],
                self.custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                    body,
                    _request_timeout=self._t,
                    _content_type="application/merge-patch+json",
                ),
            )
        except Exception as exc:
            raise _classify(exc, f"update finalizers of helmrelease {namespace}/{name}") from None

    # -- Helm release storage -----------------------------------------------------------------

    def release_revisions(self, namespace: str, release: str) -> list[StoredRelease]:
        """Every stored revision of ``release`` (oldest first), from its Secrets' labels only.

        The API server sends the Secrets' metadata only (a PartialObjectMetadataList): a record
        (the whole release, base64 gzip) is never listed, and the list is read as plain JSON,
        never built into client models. :meth:`read_release` fetches the one record a step needs.
        """
        what = f"list release storage of {namespace}/{release}"
        try:
            answer = self.core.list_namespaced_secret(
                namespace,
                label_selector=f"owner=helm,name={release}",
                _headers={"Accept": METADATA_ONLY},
                _preload_content=False,
                _request_timeout=self._t,
            )
            listed = _json_body(answer, "list", what)
        except Exception as exc:
            err = _classify(exc, what)
            if err.kind is KubeErrorKind.NOT_FOUND:
                return []
            raise err from None
        return stored_revisions(listed, namespace, release)

    def read_release(self, stored: StoredRelease) -> dict[str, Any]:
        """Decode one stored release record (manifest, config values, chart metadata)."""
        what = f"read release {stored.namespace}/{stored.secret_name}"
        try:
            answer = self.core.read_namespaced_secret(
                stored.secret_name, stored.namespace, _preload_content=False, _request_timeout=self._t
            )
            secret = _json_body(answer, "record", what)
        except Exception as exc:
            raise _classify(exc, what) from None
        data = secret.get("data") if isinstance(secret, dict) else None
        raw = (data if isinstance(data, dict) else {}).get("release") or ""
        try:
            return decode_release_record(raw, self.settings.max_release_record_bytes)
        except ValueError as exc:
            raise KubeError(KubeErrorKind.INVALID, what, f"cannot decode release record: {exc}") from None

    def label_release(self, stored: StoredRelease, labels: Mapping[str, str]) -> None:
        """Set labels on a Helm storage Secret: the agent's own labels only; the record and
        helm's labels are not touched (a merge patch of these keys)."""
        what = f"label release {stored.namespace}/{stored.secret_name}"
        body = {"metadata": {"labels": dict(labels)}}
        try:
            self.core.patch_namespaced_secret(
                stored.secret_name, stored.namespace, body, _request_timeout=self._t
            )
        except Exception as exc:
            raise _classify(exc, what) from None

    def mark_release_failed(self, stored: StoredRelease) -> None:
        """Unlock a revision left ``pending-*`` by a crash: set its status to ``failed`` in storage.

        This is what Helm itself would have written had the operation finished; it lets the next
        upgrade or rollback proceed. The record and the ``status`` label are changed together,
        guarded by the Secret's resourceVersion.
        """
        what = f"mark release {stored.namespace}/{stored.secret_name} failed"
        try:
            secret = self.core.read_namespaced_secret(
                stored.secret_name, stored.namespace, _request_timeout=self._t
            )
        except Exception as exc:
            raise _classify(exc, what) from None
        record = self.read_release(stored)
        info = record.setdefault("info", {})
        info["status"] = "failed"
        info["description"] = "marked failed by gitops-helm: the operation was interrupted"
        payload = base64.b64encode(gzip.compress(json.dumps(record).encode())).decode()
        body = {
            "metadata": {
                "labels": {"status": "failed"},
                "resourceVersion": secret.metadata.resource_version if secret.metadata else None,
            },
            "data": {"release": base64.b64encode(payload.encode()).decode()},
        }
        try:
            self.core.patch_namespaced_secret(
                stored.secret_name, stored.namespace, body, _request_timeout=self._t
            )
        except Exception as exc:
            raise _classify(exc, what) from None

    def discard_release_revision(self, stored: StoredRelease) -> None:
        """Delete a revision left ``pending-*`` by a crash from storage, so that the revision
        before it is the latest again (the agent's own interrupted remediation rollback: helm 3
        merges the next rollback against the latest revision's manifest, which the interrupted
        one claims but may never have applied). Only while its status is unchanged: guarded by
        the Secret's resourceVersion."""
        what = f"delete release {stored.namespace}/{stored.secret_name}"
        try:
            secret = self.core.read_namespaced_secret(
                stored.secret_name, stored.namespace, _request_timeout=self._t
            )
        except Exception as exc:
            raise _classify(exc, what) from None
        status = ((secret.metadata.labels if secret.metadata else None) or {}).get("status")
        if status != stored.status:
            raise KubeError(KubeErrorKind.CONFLICT, what, f"its status changed to {status!r}")
        version = secret.metadata.resource_version if secret.metadata else None
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version=version))
        try:
            self.core.delete_namespaced_secret(
                stored.secret_name, stored.namespace, body=options, _request_timeout=self._t
            )
        except Exception as exc:
            raise _classify(exc, what) from None

    # -- values sources -----------------------------------------------------------------------

    def get_configmap_data(self, namespace: str, name: str) -> dict[str, str] | None:
        try:
            cm = self.core.read_namespaced_config_map(name, namespace, _request_timeout=self._t)
        except Exception as exc:
            err = _classify(exc, f"get configmap {namespace}/{name}")
            if err.kind is KubeErrorKind.NOT_FOUND:
                return None
            raise err from None
        data = dict(cm.data or {})
        for k, v in (cm.binary_data or {}).items():
            data.setdefault(k, base64.b64decode(v).decode("utf-8", errors="replace"))
        return data

    def get_secret_data(self, namespace: str, name: str) -> dict[str, bytes] | None:
        try:
            s = self.core.read_namespaced_secret(name, namespace, _request_timeout=self._t)
        except Exception as exc:
            err = _classify(exc, f"get secret {namespace}/{name}")
            if err.kind is KubeErrorKind.NOT_FOUND:
                return None
            raise err from None
        return {k: base64.b64decode(v) for k, v in (s.data or {}).items()}

    def create_secret(
        self, namespace: str, name: str, data: Mapping[str, bytes], labels: Mapping[str, str]
    ) -> bool:
        """Create an Opaque Secret; False when one of that name exists (it is left untouched)."""
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, labels=dict(labels)),
            type="Opaque",
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        )
        try:
            self.core.create_namespaced_secret(namespace, body, _request_timeout=self._t)
            return True
        except Exception as exc:
            err = _classify(exc, f"create secret {namespace}/{name}")
            if err.kind is KubeErrorKind.CONFLICT:
                return False
            raise err from None

    def watch_values_objects(
        self, kind: str, namespace: str | None, resource_version: str | None
    ) -> Iterator[tuple[str, str, str, str]]:
        """Watch ConfigMaps or Secrets: yields ``(event, namespace, name, resourceVersion)``.

        Helm's own release Secrets are excluded by label so upgrades do not flood the watch.
        """
        w = watch.Watch()
        core = self.core
        if kind == "ConfigMap":
            fn: Any = (
                core.list_namespaced_config_map if namespace else core.list_config_map_for_all_namespaces
            )
        else:
            fn = core.list_namespaced_secret if namespace else core.list_secret_for_all_namespaces
        kwargs: dict[str, Any] = {
            "timeout_seconds": self.settings.watch_timeout_s,
            "_request_timeout": self.settings.watch_timeout_s + 30,
            "label_selector": "owner!=helm",
        }
        if resource_version:
            kwargs["resource_version"] = resource_version
        args = (namespace,) if namespace else ()
        try:
            for ev in w.stream(fn, *args, **kwargs):
                obj = ev["object"]
                if ev["type"] == "ERROR":
                    raise KubeError(KubeErrorKind.GONE, f"watch {kind}", str(obj))
                meta = obj.metadata
                yield str(ev["type"]), meta.namespace, meta.name, meta.resource_version
        except KubeError:
            raise
        except Exception as exc:
            raise _classify(exc, f"watch {kind}") from None
        finally:
            w.stop()

    # -- namespaces and events ----------------------------------------------------------------

    def namespace_exists(self, name: str) -> bool:
        try:
            self.core.read_namespace(name, _request_timeout=self._t)
            return True
        except Exception as exc:
            err = _classify(exc, f"get namespace {name}")
            if err.kind is KubeErrorKind.NOT_FOUND:
                return False
            raise err from None

    def create_namespace(self, name: str) -> None:
        try:
            body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
            self.core.create_namespace(body, _request_timeout=self._t)
        except Exception as exc:
            err = _classify(exc, f"create namespace {name}")
            if err.kind is not KubeErrorKind.CONFLICT:
                raise err from None

    def emit_event(
        self, involved: Mapping[str, Any], event_type: str, reason: str, message: str, component: str
    ) -> None:
        """Record a Kubernetes Event on ``involved`` (best effort: failures are swallowed).

        A repeat of an Event this process wrote (same object, type, reason and message) patches
        that Event's ``count`` and ``lastTimestamp`` instead of creating another object."""
        meta = involved.get("metadata", {})
        namespace = meta.get("namespace") or "default"
        message = message[:1024]
        now = datetime.now(UTC)
        key = event_key(
            namespace,
            str(involved.get("kind", "")),
            str(meta.get("name", "")),
            str(meta.get("uid", "")),
            event_type,
            reason,
            message,
        )
        before = self._recent_events.seen(key)
        if before is not None:
            count = before.count + 1
            patch = {"count": count, "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
            try:
                self.core.patch_namespaced_event(before.name, namespace, patch, _request_timeout=self._t)
            except Exception as exc:
                if _classify(exc, "patch event").kind is not KubeErrorKind.NOT_FOUND:
                    return
                self._recent_events.forget(key)  # expired (the API server's event TTL): a new one
            else:
                self._recent_events.remember(key, Written(namespace, before.name, count))
                return
        body = client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name=f"{meta.get('name', 'object')}.", namespace=namespace),
            involved_object=client.V1ObjectReference(
                api_version=involved.get("apiVersion"),
                kind=involved.get("kind"),
                name=meta.get("name"),
                namespace=meta.get("namespace"),
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            type=event_type,
            reason=reason,
            message=message,
            source=client.V1EventSource(component=component),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            reporting_component=component,
        )
        try:
            created = self.core.create_namespaced_event(namespace, body, _request_timeout=self._t)
        except Exception as exc:
            err = _classify(exc, "create event")
            del err
            return
        name = getattr(getattr(created, "metadata", None), "name", None)
        if isinstance(name, str) and name:
            self._recent_events.remember(key, Written(namespace, name, 1))

    # -- failure diagnosis: workloads, their pods, Events, log tails ---------------------------
    # Read only after a failed helm action, each with the caller's (shorter) deadline; objects are
    # returned as plain API data (camelCase keys, timestamps as RFC 3339 text).

    def _deadline(self, timeout_s: float | None) -> tuple[float, float] | float:
        if timeout_s is None:
            return self._t
        return (min(self.settings.connect_timeout_s, timeout_s), timeout_s)

    def get_workload(
        self, kind: str, namespace: str, name: str, *, timeout_s: float | None = None
    ) -> dict[str, Any] | None:
        """A Deployment, StatefulSet, DaemonSet, Job or Pod as plain data, or None if absent."""
        apps, batch = client.AppsV1Api(self.api), client.BatchV1Api(self.api)
        readers: dict[str, Any] = {
            "Deployment": apps.read_namespaced_deployment,
            "StatefulSet": apps.read_namespaced_stateful_set,
            "DaemonSet": apps.read_namespaced_daemon_set,
            "Job": batch.read_namespaced_job,
            "Pod": self.core.read_namespaced_pod,
        }
        if kind not in readers:
            raise KubeError(KubeErrorKind.NO_KIND, f"get {kind} {namespace}/{name}", "not a workload kind")
        try:
            obj = readers[kind](name, namespace, _request_timeout=self._deadline(timeout_s))
        except Exception as exc:
            err = _classify(exc, f"get {kind} {namespace}/{name}")
            if err.kind is KubeErrorKind.NOT_FOUND:
                return None
            raise err from None
        return cast(dict[str, Any], self.api.sanitize_for_serialization(obj))

    def list_pods(
        self, namespace: str, label_selector: str, *, limit: int, timeout_s: float | None = None
    ) -> list[dict[str, Any]]:
        """At most ``limit`` Pods matching ``label_selector``, as plain data."""
        try:
            res = self.core.list_namespaced_pod(
                namespace,
                label_selector=label_selector,
                limit=limit,
                _request_timeout=self._deadline(timeout_s),
            )
        except Exception as exc:
            raise _classify(exc, f"list pods {namespace} ({label_selector})") from None
        return [cast(dict[str, Any], self.api.sanitize_for_serialization(p)) for p in res.items[:limit]]

    def list_events(
        self,
        namespace: str,
        kind: str,
        name: str,
        uid: str | None,
        *,
        limit: int,
        timeout_s: float | None = None,
    ) -> list[dict[str, Any]]:
        """Events about one object (by kind and name, and uid when known), at most ``limit``,
        in the API server's order: the caller sorts them."""
        selector = f"involvedObject.kind={kind},involvedObject.name={name}"
        if uid:
            selector += f",involvedObject.uid={uid}"
        try:
            res = self.core.list_namespaced_event(
                namespace, field_selector=selector, limit=limit, _request_timeout=self._deadline(timeout_s)
            )
        except Exception as exc:
            raise _classify(exc, f"list events of {kind} {namespace}/{name}") from None
        return [cast(dict[str, Any], self.api.sanitize_for_serialization(e)) for e in res.items[:limit]]

    def pod_log_tail(
        self,
        namespace: str,
        pod: str,
        container: str,
        *,
        lines: int,
        max_bytes: int,
        previous: bool = False,
        timeout_s: float | None = None,
    ) -> str:
        """The last ``lines`` lines (at most ``max_bytes``) of a container's log (raises KubeError:
        a node that serves no logs, such as a simulated one, answers with an error)."""
        try:
            response: Any = self.core.read_namespaced_pod_log(
                pod,
                namespace,
                container=container,
                tail_lines=lines,
                limit_bytes=max_bytes,
                previous=previous,
                _preload_content=False,
                _request_timeout=self._deadline(timeout_s),
            )
            data = response.read(max_bytes)
            response.release_conn()
        except Exception as exc:
            raise _classify(exc, f"read log of pod {namespace}/{pod} container {container}") from None
        return bytes(data).decode("utf-8", errors="replace")

    # -- leader election ---------------------------------------------------------------------

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A coordination.k8s.io/v1 Lease as plain data (``metadata``, ``spec``), or None."""
        api = client.CoordinationV1Api(self.api)
        try:
            lease = api.read_namespaced_lease(name, namespace, _request_timeout=self._t)
        except Exception as exc:
            err = _classify(exc, f"get lease {namespace}/{name}")
            if err.kind is KubeErrorKind.NOT_FOUND:
                return None
            raise err from None
        return cast(dict[str, Any], self.api.sanitize_for_serialization(lease))

    def list_leases(self, namespace: str) -> list[dict[str, Any]]:
        """Every coordination.k8s.io/v1 Lease of ``namespace`` as plain data (``gitops-helm
        status`` shows each shard's leader)."""
        api = client.CoordinationV1Api(self.api)
        try:
            found = api.list_namespaced_lease(namespace, _request_timeout=self._t)
        except Exception as exc:
            raise _classify(exc, f"list leases in {namespace}") from None
        return [cast(dict[str, Any], self.api.sanitize_for_serialization(lease)) for lease in found.items]

    def write_lease(
        self,
        namespace: str,
        name: str,
        *,
        holder: str,
        duration_s: int,
        acquired: datetime,
        renewed: datetime,
        transitions: int,
        resource_version: str | None,
    ) -> None:
        """Create the Lease (``resource_version`` None) or replace it guarded by resourceVersion.

        A lost race raises CONFLICT (409): somebody else wrote the Lease in between.
        """
        api = client.CoordinationV1Api(self.api)

        def micro(t: datetime) -> datetime:
            # MicroTime must carry a fraction, and the client serialises with isoformat(), which
            # drops it when it is zero: never send a zero microsecond (1 us is irrelevant here).
            return t.replace(microsecond=t.microsecond or 1)

        body = client.V1Lease(
            api_version="coordination.k8s.io/v1",
            kind="Lease",
            metadata=client.V1ObjectMeta(name=name, namespace=namespace, resource_version=resource_version),
            spec=client.V1LeaseSpec(
                holder_identity=holder,
                lease_duration_seconds=duration_s,
                acquire_time=micro(acquired),
                renew_time=micro(renewed),
                lease_transitions=transitions,
            ),
        )
        try:
            if resource_version is None:
                api.create_namespaced_lease(namespace, body, _request_timeout=self._t)
            else:
                api.replace_namespaced_lease(name, namespace, body, _request_timeout=self._t)
        except Exception as exc:
            raise _classify(exc, f"write lease {namespace}/{name}") from None

    # -- arbitrary objects (Git sync, CRD install, drift) ---------------------------------------

    @property
    def dynamic(self) -> dynamic.DynamicClient:
        if self._dynamic is None:
            try:
                self._dynamic = dynamic.DynamicClient(self.api, discoverer=_MemoryDiscoverer)
            except Exception as exc:
                raise _classify(exc, "API discovery") from None
        return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        try:
            return self.dynamic.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            # A CRD applied a moment ago: refresh discovery once before giving up.
            try:
                self.dynamic.resources.invalidate_cache()
                return self.dynamic.resources.get(api_version=api_version, kind=kind)
            except Exception as exc:
                raise _classify(exc, f"resolve {api_version}/{kind}") from None
        except Exception as exc:
            raise _classify(exc, f"resolve {api_version}/{kind}") from None

    def preferred_api_version(self, group: str, kind: str) -> str | None:
        """The served apiVersion of ``group``/``kind`` (the preferred one), or None if not served."""
        try:
            found = self.dynamic.resources.search(group=group, kind=kind)
        except Exception as exc:
            raise _classify(exc, f"resolve {group}/{kind}") from None
        versions = [r for r in found if getattr(r, "preferred", False)] or list(found)
        return str(versions[0].group_version) if versions else None

    def is_namespaced(self, api_version: str, kind: str) -> bool:
        return bool(self._resource(api_version, kind).namespaced)

    def apply(
        self, obj: Mapping[str, Any], field_manager: str, *, dry_run: bool = False, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply of one object; returns the object as the server has it."""
        meta = obj.get("metadata", {})
        what = f"apply {obj.get('kind')} {meta.get('namespace') or ''}/{meta.get('name')}".replace(" /", " ")
        res = self._resource(str(obj.get("apiVersion")), str(obj.get("kind")))
        kwargs: dict[str, Any] = {"field_manager": field_manager, "force_conflicts": force}
        if dry_run:
            kwargs["dry_run"] = "All"
        if res.namespaced:
            kwargs["namespace"] = meta.get("namespace")
        try:
            out = res.server_side_apply(body=dict(obj), name=meta.get("name"), **kwargs)
        except Exception as exc:
            raise _classify(exc, what) from None
        return cast(dict[str, Any], out.to_dict())

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        res = self._resource(api_version, kind)
        try:
            out = res.get(name=name, namespace=namespace if res.namespaced else None)
        except Exception as exc:
            err = _classify(exc, f"get {kind} {namespace or ''}/{name}")
            if err.kind is KubeErrorKind.NOT_FOUND:
                return None
            raise err from None
        return cast(dict[str, Any], out.to_dict())

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        """Delete an object (background propagation); False when it was already gone."""
        res = self._resource(api_version, kind)
        try:
            res.delete(
                name=name,
                namespace=namespace if res.namespaced else None,
                body={"propagationPolicy": "Background"},
            )
        except Exception as exc:
            err = _classify(exc, f"delete {kind} {namespace or ''}/{name}")
            if err.kind is KubeErrorKind.NOT_FOUND:
                return False
            raise err from None
        return True

    def annotate(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        annotations: Mapping[str, str],
        field_manager: str,
    ) -> None:
        """Server-side apply ``annotations`` only (under their own field manager) on one object."""
        meta: dict[str, Any] = {"name": name, "annotations": dict(annotations)}
        if namespace:
            meta["namespace"] = namespace
        self.apply({"apiVersion": api_version, "kind": kind, "metadata": meta}, field_manager)

    def apply_configmap(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str],
        field_manager: str,
        labels: Mapping[str, str] | None = None,
    ) -> None:
        meta: dict[str, Any] = {"name": name, "namespace": namespace}
        if labels:
            meta["labels"] = dict(labels)
        self.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)}, field_manager
        )

    # -- the CLI's reads and requests (get, reconcile, events, check) ---------------------------

    def patch_helmrelease(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """JSON merge patch of a HelmRelease (annotations, ``spec.suspend``); NOT_FOUND when absent."""
        try:
            return cast(
                dict[str, Any],
                self.custom.patch_namespaced_custom_object(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                    dict(patch),
                    _request_timeout=self._t,
                    _content_type="application/merge-patch+json",
                ),
            )
        except Exception as exc:
            raise _classify(exc, f"patch helmrelease {namespace}/{name}") from None

    def list_configmaps(self, label_selector: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """ConfigMaps matching ``label_selector`` (in ``namespace``, or everywhere), as plain data."""
        what = f"list configmaps ({label_selector}) in {namespace or 'all namespaces'}"
        try:
            if namespace:
                res = self.core.list_namespaced_config_map(
                    namespace, label_selector=label_selector, _request_timeout=self._t
                )
            else:
                res = self.core.list_config_map_for_all_namespaces(
                    label_selector=label_selector, _request_timeout=self._t
                )
        except Exception as exc:
            raise _classify(exc, what) from None
        return [cast(dict[str, Any], self.api.sanitize_for_serialization(c)) for c in res.items]

    def list_kind_events(
        self, namespace: str | None, kind: str, name: str | None, *, page_size: int = 500
    ) -> list[dict[str, Any]]:
        """Every Event about objects of ``kind`` (one of them when ``name`` is given), in
        ``namespace`` or everywhere, read in pages of ``page_size`` (each request with its deadline).

        All of them, because the API server lists in key (name) order, not by time: the newest
        are known only once every page is read (Events expire after an hour, so there are few)."""
        selector = f"involvedObject.kind={kind}" + (f",involvedObject.name={name}" if name else "")
        what = f"list events of {kind} {name or ''} in {namespace or 'all namespaces'}".replace("  ", " ")
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            paging: dict[str, Any] = {"limit": page_size}
            if token:
                paging["_continue"] = token
            try:
                if namespace:
                    res = self.core.list_namespaced_event(
                        namespace, field_selector=selector, _request_timeout=self._t, **paging
                    )
                else:
                    res = self.core.list_event_for_all_namespaces(
                        field_selector=selector, _request_timeout=self._t, **paging
                    )
            except Exception as exc:
                raise _classify(exc, what) from None
            found.extend(cast(dict[str, Any], self.api.sanitize_for_serialization(e)) for e in res.items)
            token = res.metadata._continue if res.metadata is not None else None
            if not token:
                return found

    def server_version(self) -> str:
        """The API server's version (``/version``'s gitVersion): the cheapest "is it there?"."""
        try:
            info = client.VersionApi(self.api).get_code(_request_timeout=self._t)
        except Exception as exc:
            raise _classify(exc, "get API server version") from None
        return str(info.git_version)

    def get_crd(self, name: str) -> dict[str, Any] | None:
        """A CustomResourceDefinition as plain data, or None when it is not installed."""
        api = client.ApiextensionsV1Api(self.api)
        try:
            crd = api.read_custom_resource_definition(name, _request_timeout=self._t)
        except Exception as exc:
            err = _classify(exc, f"get customresourcedefinition {name}")
            if err.kind is KubeErrorKind.NOT_FOUND:
                return None
            raise err from None
        return cast(dict[str, Any], self.api.sanitize_for_serialization(crd))

    def may(
        self,
        verb: str,
        group: str,
        resource: str,
        *,
        namespace: str | None = None,
        subresource: str = "",
        name: str = "",
    ) -> tuple[bool, str]:
        """Whether this client's identity may ``verb`` the resource (a SelfSubjectAccessReview),
        and the authorizer's reason when it says why."""
        body = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb,
                    group=group,
                    resource=resource,
                    subresource=subresource or None,
                    namespace=namespace,
                    name=name or None,
                )
            )
        )
        try:
            review = client.AuthorizationV1Api(self.api).create_self_subject_access_review(
                body, _request_timeout=self._t
            )
        except Exception as exc:
            raise _classify(exc, f"access review {verb} {resource}") from None
        status = review.status
        return bool(status and status.allowed), str(
            (status and (status.reason or status.evaluation_error)) or ""
        )


class _MemoryDiscoverer(LazyDiscoverer):
    """API discovery kept in memory by one client, never in a file.

    The library's default is a file in the shared temporary directory named after the server
    URL alone: read by every client of every process on the host (each impersonated identity
    included) and writable by any local user before the agent creates it. Each client (one per
    identity) discovers once and keeps the answer; a CRD applied later is found by
    ``invalidate_cache`` as before, in memory."""

    def __init__(self, client: Any, cache_file: Any) -> None:
        # a path that can never exist (a file below /dev/null), so nothing is ever read
        super().__init__(client, os.path.join(os.devnull, "discovery.json"))

    def _write_cache(self) -> None:
        """Nothing is written: the cache lives in this object only."""


def _keepalive_socket_options(settings: KubeSettings) -> list[tuple[int, int, int]]:
    options = [
        *urllib3.connection.HTTPConnection.default_socket_options,
        (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    ]
    for name, value in (
        ("TCP_KEEPIDLE", settings.keepalive_idle_s),
        ("TCP_KEEPINTVL", settings.keepalive_interval_s),
        ("TCP_KEEPCNT", settings.keepalive_count),
    ):
        if hasattr(socket, name):  # Linux; other systems keep their own defaults
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def _default_request_timeout(api: client.ApiClient, timeout: tuple[float, float]) -> None:
    """Give every request of ``api`` a (connect, read) timeout unless it names its own.

    The typed calls pass ``_request_timeout`` themselves, but the dynamic client's discovery, get,
    delete and server-side apply do not, and an answer that never comes would hold a worker (or
    the Git sync) forever. The client sends every call through ``rest_client.request`` with the
    timeout as a keyword, so the default is set there, once.
    """
    send = api.rest_client.request

    def request(*args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("_request_timeout"):
            kwargs["_request_timeout"] = timeout
        verb = _request_verb(
            str(args[0] if args else kwargs.get("method", "")),
            str(args[1] if len(args) > 1 else kwargs.get("url", "")),
        )
        try:
            answer = send(*args, **kwargs)
        except BaseException:
            metrics.KUBE_REQUESTS.labels(verb=verb, outcome="error").inc()
            raise
        metrics.KUBE_REQUESTS.labels(verb=verb, outcome="ok").inc()
        return answer

    api.rest_client.request = request  # type: ignore[method-assign]


_VERBS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


_WATCH_QUERY = re.compile(r"[?&]watch=(?:true|True|1)(?:&|$)")


def _request_verb(method: str, url: str) -> str:
    """The API verb of one request, for ``gitops_helm_kube_requests_total`` (a watch is a GET
    whose query asks ``watch=true``; a list and a get are both ``get``)."""
    verb = _VERBS.get(method.upper(), "other")
    if verb == "get" and _WATCH_QUERY.search(url):
        return "watch"
    return verb


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace a kubeconfig context names (kubectl's default for ``-n``), else the
    in-cluster Pod's own namespace, else ``default``."""
    if kubeconfig or not _in_cluster():
        try:
            contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
        except (config.ConfigException, OSError, TypeError, ValueError):
            return "default"
        chosen = next((c for c in contexts or () if c.get("name") == context), None) if context else active
        namespace = ((chosen or {}).get("context") or {}).get("namespace")
        return str(namespace) if namespace else "default"
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace", encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"
