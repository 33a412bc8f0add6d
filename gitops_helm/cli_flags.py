"""How the ``gitops-helm`` command line reads flags, for every verb at once.

Place in the flow: ``cli.build_parser`` builds its parsers from :class:`FlagParser`, then calls
:func:`document_flags`. Everything here is argparse, pure and fast (no I/O):

- booleans: every ``action="store_true"`` flag is a :class:`config.BoolFlag` (``--flag``,
  ``--flag=false``, the older ``--flag false``); a bare ``--flag`` is rewritten to
  ``--flag=true`` before parsing, so it never takes the next word (a positional) as its value;
- lists: every ``action="append"`` flag is a :class:`config.ListFlag` (repeatable, comma lists);
- no abbreviations: ``--git-u`` is an error, not ``--git-url``;
- the flags of the Helm Operator and of Flux v1 (:data:`LEGACY_FLAGS`): renamed ones are accepted
  with a deprecation notice, harmless obsolete ones are ignored with a notice, and ones whose
  meaning is gone (Tiller, Helm 2, memcached, ...) are refused with the reason;
- ``--help`` names each flag's ``GITOPS_HELM_*`` variable and its default.
"""

from __future__ import annotations

import argparse
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gitops_helm.config import (
    ENV_PREFIX,
    FALSE_WORDS,
    TRUE_WORDS,
    BoolFlag,
    ListFlag,
    environment_variables_read,
)
from gitops_helm.errors import ConfigError


class Legacy(enum.Enum):
    RENAMED = "renamed"  # accepted under its new name, with a deprecation notice
    IGNORED = "ignored"  # nothing to do here: accepted, a notice says why it has no effect
    REFUSED = "refused"  # its meaning is gone, and ignoring it would surprise: an error says why


@dataclass(frozen=True)
class LegacyFlag:
    """A flag of the Helm Operator (``helm-operator``) or of Flux v1 (``fluxd``)."""

    kind: Legacy
    origin: str  # "Helm Operator", "Flux v1" or both
    reason: str  # why it is renamed, ignored or refused (shown to the user)
    new: str | None = None  # RENAMED: the flag to use
    takes_value: bool = True  # IGNORED/REFUSED: whether the next word is its value
    # RENAMED: the old value -> the value for the new flag (may raise ConfigError)
    translate: Callable[[str], str] | None = None


_HO = "Helm Operator"
_FLUX = "Flux v1"
_BOTH = "Helm Operator and Flux v1"
_HELM2 = "Helm 2 and Tiller are not supported: gitops-helm runs helm 3 or 4 (--helm-bin); remove it"
_MEMCACHED = (
    "there is no memcached: registry answers are cached in the agent's memory; remove it (and the "
    "memcached Deployment)"
)
_FLUX_SCANNING = (
    "Flux v1 scanned every running workload's images; gitops-helm scans only the images of "
    "HelmReleases in Git that carry an update policy (--image-automation); remove it"
)


def _helm_versions(value: str) -> str:
    versions = {v.strip().lower() for v in value.split(",") if v.strip()}
    if "v2" in versions or "2" in versions:
        raise ConfigError(
            f"{value!r} enables Helm 2: {_HELM2}. HelmReleases with spec.helmVersion v2 must be "
            "migrated to Helm 3 (helm 2to3) first"
        )
    return value


def _repository_import(value: str) -> str:
    """``v3:/path/repositories.yaml`` (one entry) -> the path."""
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if len(entries) != 1:
        raise ConfigError(
            f"{value!r}: give one repositories.yaml to --repositories-file (merge the files into one)"
        )
    version, sep, path = entries[0].partition(":")
    if sep and version in ("v2", "v3"):
        if version == "v2":
            raise ConfigError(f"{value!r} imports for Helm 2: {_HELM2}")
        return path
    return entries[0]


def _log_format(value: str) -> str:
    return "text" if value == "fmt" else value


def _renamed(new: str, origin: str, translate: Callable[[str], str] | None = None) -> LegacyFlag:
    return LegacyFlag(Legacy.RENAMED, origin, f"use {new}", new=new, translate=translate)


def _ignored(origin: str, reason: str, *, takes_value: bool = True) -> LegacyFlag:
    return LegacyFlag(Legacy.IGNORED, origin, reason, takes_value=takes_value)


def _refused(origin: str, reason: str, *, takes_value: bool = True) -> LegacyFlag:
    return LegacyFlag(Legacy.REFUSED, origin, reason, takes_value=takes_value)


_SYNC_STATE = "the sync state lives in a ConfigMap (--state-namespace), not in a Git tag or note"

# Exact names. Flags that kept their name and meaning (--git-url, --git-branch, --git-path,
# --git-poll-interval, --git-timeout, --git-default-ref, --update-chart-deps, --workers, --listen/-l,
# --log-format, --kubeconfig, --sync-garbage-collection) need no entry.
LEGACY_FLAGS: dict[str, LegacyFlag] = {
    "--allow-namespace": _renamed("--namespace", _HO),
    "--k8s-allow-namespace": _renamed("--namespace", _FLUX),
    "--k8s-namespace-whitelist": _renamed("--namespace", _FLUX),
    "--k8s-default-namespace": _renamed("--default-namespace", _FLUX),
    "--charts-sync-interval": _renamed("--resync-interval", _HO),
    # Flux v1 applied at least every --sync-interval and fetched every --git-poll-interval; here
    # every poll syncs, so one interval does both (an explicit --git-poll-interval wins)
    "--sync-interval": _renamed("--git-poll-interval", _FLUX),
    "--sync-garbage-collection-dry": _renamed("--sync-garbage-collection-dry-run", _FLUX),
    "--automation-interval": _renamed("--image-scan-interval", _FLUX),
    "--registry-poll-interval": _renamed("--image-scan-interval", _FLUX),
    "--registry-rps": _renamed("--image-registry-rps", _FLUX),
    "--registry-burst": _renamed("--image-registry-burst", _FLUX),
    "--registry-insecure-host": _renamed("--oci-plain-http", _FLUX),
    "--docker-config": _renamed("--image-docker-config", _FLUX),
    "--helm-repository-import": _renamed("--repositories-file", _HO, _repository_import),
    "--log-format": _renamed("--log-format", _BOTH, _log_format),  # only its value 'fmt'
    "--enabled-helm-versions": LegacyFlag(
        Legacy.IGNORED,
        _HO,
        "the helm version is the one of --helm-bin (helm 3 or 4)",
        translate=_helm_versions,
    ),
    "--helm-version": LegacyFlag(
        Legacy.IGNORED,
        _HO,
        "the helm version is the one of --helm-bin (helm 3 or 4)",
        translate=_helm_versions,
    ),
    "--status-update-interval": _ignored(_HO, "the status is written at every reconcile step"),
    "--log-release-diffs": _ignored(
        _HO,
        "release diffs are never logged (they may hold secret values); drift shows in the HelmRelease status",
        takes_value=False,
    ),
    "--git-readonly": _ignored(
        _FLUX, "the agent writes to Git only with --image-automation", takes_value=False
    ),
    "--git-set-author": _ignored(_FLUX, "there is no fluxctl", takes_value=False),
    "--sync-state": _ignored(_FLUX, _SYNC_STATE),
    "--git-sync-tag": _ignored(_FLUX, _SYNC_STATE),
    "--git-notes-ref": _ignored(_FLUX, _SYNC_STATE),
    "--git-label": _ignored(_FLUX, _SYNC_STATE),
    "--sync-timeout": _ignored(_FLUX, "every Kubernetes request has its own deadline"),
    "--registry-disable-scanning": _ignored(
        _FLUX, "images are scanned only with --image-automation", takes_value=False
    ),
    "--registry-cache-expiry": _ignored(_FLUX, "it had no effect in Flux v1 either"),
    "--kubernetes-kubectl": _ignored(_FLUX, "the agent does not run kubectl"),
    "--k8s-verbosity": _ignored(_FLUX, "use --log-level"),
    "--k8s-unsafe-exclude-resource": _ignored(
        _FLUX, "garbage collection deletes only what this sync source applied"
    ),
    "--k8s-exclude-resource": _ignored(
        _FLUX, "garbage collection deletes only what this sync source applied"
    ),
    "--rpc-timeout": _ignored(_FLUX, "there is no fluxctl API"),
    "--master": _refused(_HO, "give the API server through a kubeconfig (--kubeconfig, --kube-context)"),
    "--convert-tiller-out-cluster": _refused(_HO, _HELM2, takes_value=False),
    "--convert-release-storage": _refused(_HO, _HELM2),
    "--listen-metrics": _refused(_FLUX, "/metrics is served on --listen; point the scrape there"),
    "--git-email": _refused(_FLUX, 'use --image-commit-author "Name <email>"'),
    "--git-signing-key": _refused(
        _FLUX, "update commits are signed with an SSH key: use --image-signing-key FILE"
    ),
    "--git-ci-skip": _refused(_FLUX, "put [ci skip] in --image-commit-template instead", takes_value=False),
    "--git-ci-skip-message": _refused(_FLUX, "put the text in --image-commit-template instead"),
    "--git-verify-signatures": _refused(
        _FLUX,
        "commit signatures are not verified; running without would apply unverified commits",
        takes_value=False,
    ),
    "--git-verify-signatures-mode": _refused(
        _FLUX, "commit signatures are not verified; running without would apply unverified commits"
    ),
    "--git-gpg-key-import": _refused(
        _FLUX, "commit signatures are not verified; running without would apply unverified commits"
    ),
    "--git-secret": _refused(
        _FLUX, "git-secret files are not decrypted; they would be applied encrypted", takes_value=False
    ),
    "--sops": _refused(
        _FLUX, "SOPS files are not decrypted; they would be applied encrypted", takes_value=False
    ),
    "--manifest-generation": _refused(
        _FLUX, ".flux.yaml generators are not run: commit the generated manifests", takes_value=False
    ),
    "--git-lfs": _refused(_FLUX, "Git LFS files are not fetched", takes_value=False),
    "--connect": _refused(_FLUX, "Weave Cloud is gone"),
    "--token": _refused(_FLUX, "Weave Cloud is gone"),
}

# Whole families, when no exact entry or known flag matches.
LEGACY_PREFIXES: dict[str, LegacyFlag] = {
    "--tiller-": _refused(_HO, _HELM2),
    "--memcached-": _refused(_FLUX, _MEMCACHED),
    "--registry-": _refused(_FLUX, _FLUX_SCANNING),
    "--k8s-secret-": _refused(_FLUX, "give the SSH key as a file: --git-ssh-key (mount the Secret)"),
    "--ssh-keygen-": _refused(_FLUX, "the agent does not make an SSH key: give one with --git-ssh-key"),
}

# Whether a legacy boolean flag's value may follow it as the next word: only these two words (a
# positional argument could be any other).
_SPACED_BOOL_WORDS = frozenset({"true", "false"})


def _is_value(word: str, takes_value: bool) -> bool:
    """Whether ``word``, after a legacy flag without ``=``, is that flag's value."""
    return not word.startswith("-") if takes_value else word.lower() in _SPACED_BOOL_WORDS


def legacy_flag(name: str) -> LegacyFlag | None:
    found = LEGACY_FLAGS.get(name)
    if found is not None:
        return found
    for prefix, legacy in LEGACY_PREFIXES.items():
        if name.startswith(prefix):
            return legacy
    return None


class FlagParser(argparse.ArgumentParser):
    """The CLI's parser: no abbreviations, booleans and lists as in :mod:`config`, legacy flags.

    A parser with subcommands leaves its sub-parser's words alone: each leaf parser reads its own
    (``add_parser`` makes every sub-parser a :class:`FlagParser` too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # flags other modules declare with argparse's own names get this CLI's behaviour
        self.register("action", "store_true", BoolFlag)
        self.register("action", "append", ListFlag)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if args is None or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        try:
            words, notices = self.rewrite(list(args))
        except ConfigError as exc:
            self.error(str(exc))
        parsed, extras = super().parse_known_args(words, namespace)
        parsed.flag_notices = [*getattr(parsed, "flag_notices", []), *notices]
        return parsed, extras

    def known(self, name: str) -> argparse.Action | None:
        return self._option_string_actions.get(name)

    def rewrite(self, words: list[str]) -> tuple[list[str], list[str]]:
        """Legacy flags to their present form, bare booleans to ``--flag=true``; the notices to
        show. ConfigError for a refused flag."""
        out: list[str] = []
        notices: list[str] = []
        given = {w.partition("=")[0] for w in words if w.startswith("--")}
        i = 0
        while i < len(words):
            word = words[i]
            i += 1
            if word == "--":
                out += words[i - 1 :]
                break
            if not word.startswith("--"):
                short = self.known(word) if len(word) == 2 and word[0] == "-" else None
                if isinstance(short, BoolFlag):  # -A: a bare short boolean takes no positional either
                    if i < len(words) and words[i].lower() in _SPACED_BOOL_WORDS:
                        word = f"{word}={words[i]}"
                        i += 1
                    else:
                        word = f"{word}=true"
                out.append(word)
                continue
            name, has_value, value = word.partition("=")
            legacy = legacy_flag(name)
            action = self.known(name)
            if legacy is not None and (action is None or legacy.translate is not None):
                takes_value = legacy.takes_value
                if legacy.kind is Legacy.RENAMED and legacy.new is not None:
                    target = self.known(legacy.new)
                    if target is None and action is None:
                        out.append(word)  # not a flag of this verb: argparse says so
                        continue
                    takes_value = not isinstance(target or action, BoolFlag)
                if not has_value and i < len(words) and _is_value(words[i], takes_value):
                    value, has_value = words[i], "="
                    i += 1
                if legacy.translate is not None and has_value:
                    try:
                        new_value = legacy.translate(value)
                    except ConfigError as exc:
                        raise ConfigError(f"{name}: {exc}") from None
                    if legacy.kind is Legacy.RENAMED and new_value != value:
                        notices.append(f"{name} {value!r} is deprecated: it means {new_value!r}")
                    value = new_value
                present = self._legacy(name, legacy, has_value, value, given, notices)
                if present is None:
                    continue
                word = present
                name = word.partition("=")[0]
                action = self.known(name)
            if isinstance(action, BoolFlag) and not has_value:
                if i < len(words) and words[i].lower() in _SPACED_BOOL_WORDS:
                    word = f"{name}={words[i]}"  # the older spaced form
                    i += 1
                else:
                    word = f"{name}=true"
            out.append(word)
        return out, notices

    def _legacy(
        self, name: str, legacy: LegacyFlag, has_value: str, value: str, given: set[str], notices: list[str]
    ) -> str | None:
        """One legacy flag as the word to parse (None: dropped), its notice added."""
        origin = f"{name} (a {legacy.origin} flag)"
        if legacy.kind is Legacy.REFUSED:
            raise ConfigError(f"{origin} is no longer supported: {legacy.reason}")
        if legacy.kind is Legacy.IGNORED:
            notices.append(f"{origin} is ignored: {legacy.reason}")
            return None
        new = legacy.new or name
        if new == name:  # only a value renamed (the notice came with it)
            return f"{name}={value}" if has_value else name
        if new in given:
            notices.append(f"{origin} is ignored: {new} is given too")
            return None
        notices.append(f"{origin} is deprecated: {legacy.reason}")
        return f"{new}={value}" if has_value else new


def _env_help(action: argparse.Action, env_read: frozenset[str]) -> str | None:
    name = action.option_strings[0]
    if not name.startswith("--"):
        return None
    variable = ENV_PREFIX + name[2:].upper().replace("-", "_")
    return variable if variable in env_read else None


def document_flags(parser: argparse.ArgumentParser) -> None:
    """Append each flag's ``GITOPS_HELM_*`` variable (those the settings really read) and, when
    its help does not already say, its default, in every parser under ``parser``."""
    env_read = environment_variables_read()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                document_flags(sub)
            continue
        if not action.option_strings or action.help in (None, argparse.SUPPRESS):
            continue
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        text = action.help or ""
        if "default" not in text:
            default = "false" if isinstance(action, BoolFlag) else "unset"
            text += f" (default: {default})"
        variable = _env_help(action, env_read)
        if variable is not None:
            text += f" [env {variable}]"
        action.help = text


def bool_words() -> str:
    """The accepted boolean words, for documentation."""
    return f"true: {', '.join(sorted(TRUE_WORDS))}; false: {', '.join(sorted(FALSE_WORDS))}"
