"""Build Flux's helm-controller and source-controller from the Go module proxy, once, into a cache
outside the repository, the same way scripts/testenv-build builds helm and Kubernetes.

  python -m bench.build_flux                 build (or find cached) and print the bin directory
  python -m bench.build_flux --install-crds  also apply their CRDs to the test environment's cluster
  python -m bench.build_flux --remove-crds   delete those CRDs again (and every Flux object with them)

The pair is pinned: helm-controller v1.6.0 requires source-controller/api v1.9.0 (its go.mod), and
source-controller v1.9.6 is the newest release that serves that API and still builds with Go 1.26
(v1.10.x declares `go 1.27.0`). The proxy serves helm-controller only at a few exact versions.

Both modules have relative `replace ./api` lines, and a module zip never holds a nested module, so
`go install module@version` is refused. The build copies the released module out of the module
cache, points that one replace at the published api module of the version the go.mod requires,
and builds with the module's own go.sum: every other dependency stays at the released pin.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HELM_CONTROLLER_VERSION = os.environ.get("FLUX_HELM_CONTROLLER_VERSION", "v1.6.0")
SOURCE_CONTROLLER_VERSION = os.environ.get("FLUX_SOURCE_CONTROLLER_VERSION", "v1.9.6")

GO_DOWNLOAD_TIMEOUT_S = 900.0
GO_BUILD_TIMEOUT_S = 3600.0
KUBECTL_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Controller:
    name: str  # the binary's name
    module: str
    version: str
    # Dependencies this machine's module proxy refuses at the pinned version ("403 Forbidden: This
    # module version is not available"), swapped for the nearest version it serves. Found with
    # `go mod download -json all` in the build directory; each one is a deviation from the release.
    substitutes: tuple[tuple[str, str, str], ...] = ()  # (module, pinned version, version used)


CONTROLLERS = (
    Controller(
        "source-controller",
        "github.com/fluxcd/source-controller",
        SOURCE_CONTROLLER_VERSION,
        substitutes=(("github.com/fluxcd/pkg/artifact", "v0.18.3", "v0.18.0"),),
    ),
    Controller(
        "helm-controller",
        "github.com/fluxcd/helm-controller",
        HELM_CONTROLLER_VERSION,
        substitutes=(("github.com/fluxcd/pkg/chartutil", "v1.27.0", "v1.27.2"),),
    ),
)


class BuildError(RuntimeError):
    """A step of the build failed; the message names the command and its error output."""


def cache_dir() -> Path:
    root = os.environ.get("GITOPS_HELM_BENCH_CACHE")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gitops-helm" / "bench"
    key = f"flux-hc{HELM_CONTROLLER_VERSION.lstrip('v')}-sc{SOURCE_CONTROLLER_VERSION.lstrip('v')}"
    return base / key


def bin_dir() -> Path:
    return cache_dir() / "bin"


def _log(start: float, message: str) -> None:
    print(f"[bench-build-flux {time.monotonic() - start:5.0f}s] {message}", file=sys.stderr, flush=True)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # GOTOOLCHAIN=local: never fetch another Go; a module needing a newer one fails with a clear error.
    env.update({"GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false -mod=mod"})
    return env


def _run(argv: list[str], timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env or _go_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{' '.join(argv)}: no answer within {timeout:.0f}s") from exc
    except FileNotFoundError as exc:
        raise BuildError(f"{argv[0]}: not found on PATH") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-2000:]
        raise BuildError(
            f"{' '.join(argv)} (in {cwd or os.getcwd()}) failed with exit {done.returncode}:\n{tail}"
        )
    return done.stdout


def module_dir(module: str, version: str) -> Path:
    """Download module@version through the proxy (or find it in the module cache) and return its directory."""
    out = _run(["go", "mod", "download", "-json", f"{module}@{version}"], GO_DOWNLOAD_TIMEOUT_S)
    info = json.loads(out)
    if info.get("Error"):
        raise BuildError(f"go mod download {module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def _required_version(go_mod_json: str, module: str) -> str:
    for req in json.loads(go_mod_json).get("Require") or []:
        if req["Path"] == module:
            return str(req["Version"])
    raise BuildError(f"go.mod of the released module requires no {module}")


def _make_writable(tree: Path) -> None:
    # The module cache is read-only; the copy must be editable (go.mod, go.sum) and removable.
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def build_controller(ctl: Controller, start: float) -> Path:
    target = bin_dir() / ctl.name
    if os.access(target, os.X_OK):
        _log(start, f"{ctl.name} {ctl.version}: cached")
        return target
    t0 = time.monotonic()
    _log(start, f"{ctl.name} {ctl.version}: downloading {ctl.module}@{ctl.version}")
    source = module_dir(ctl.module, ctl.version)
    work = cache_dir() / "build" / ctl.name
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work, symlinks=True)
    _make_writable(work)
    api = f"{ctl.module}/api"
    api_version = _required_version(_run(["go", "mod", "edit", "-json"], 60.0, cwd=work), api)
    _run(["go", "mod", "edit", f"-replace={api}={api}@{api_version}"], 60.0, cwd=work)
    for module, pinned, used in ctl.substitutes:
        _log(start, f"{ctl.name} {ctl.version}: the proxy refuses {module}@{pinned}; using {used}")
        _run(["go", "mod", "edit", f"-replace={module}={module}@{used}"], 60.0, cwd=work)
    _log(start, f"{ctl.name} {ctl.version}: compiling (api {api_version} from the proxy)")
    out = work / "out" / ctl.name
    _run(["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."], GO_BUILD_TIMEOUT_S, cwd=work)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Rename into place last, so an interrupted build never leaves a binary a later run takes as done.
    out.replace(target)
    _log(start, f"{ctl.name} {ctl.version}: done in {time.monotonic() - t0:.0f}s")
    return target


def build_all() -> dict[str, Path]:
    start = time.monotonic()
    _log(start, f"cache: {cache_dir()}")
    return {ctl.name: build_controller(ctl, start) for ctl in CONTROLLERS}


def crd_files() -> list[Path]:
    files: list[Path] = []
    for ctl in CONTROLLERS:
        bases = module_dir(ctl.module, ctl.version) / "config" / "crd" / "bases"
        found = sorted(bases.glob("*.yaml"))
        if not found:
            raise BuildError(f"no CRDs in {bases}")
        files.extend(found)
    return files


def _kubectl(args: list[str], environ: dict[str, str] | None, timeout: float = KUBECTL_TIMEOUT_S) -> str:
    environ = dict(os.environ) if environ is None else environ
    kubectl = environ.get("KUBECTL_BIN", "kubectl")
    if not environ.get("KUBECONFIG"):
        raise BuildError('KUBECONFIG is not set: run eval "$(scripts/testenv env)" first')
    return _run([kubectl, f"--request-timeout={timeout:.0f}s", *args], timeout + 10.0, env=environ)


def install_crds(environ: dict[str, str] | None = None) -> list[str]:
    """Apply the controllers' CRDs and wait until the API server serves them; return their names."""
    files = crd_files()
    argv = ["apply", "--server-side", "--force-conflicts", "--field-manager=bench-flux"]
    for path in files:
        argv += ["-f", str(path)]
    _kubectl(argv, environ)
    names = [
        f"crd/{path.name.removesuffix('.yaml').split('_', 1)[1]}.{path.name.split('_', 1)[0]}"
        for path in files
    ]
    _kubectl(["wait", "--for=condition=Established", "--timeout=120s", *names], environ, 130.0)
    return names


def remove_crds(environ: dict[str, str] | None = None) -> None:
    files = crd_files()
    argv = ["delete", "--ignore-not-found", "--wait=true", "--timeout=300s"]
    for path in files:
        argv += ["-f", str(path)]
    _kubectl(argv, environ, 310.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.build_flux", description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--install-crds", action="store_true", help="apply the CRDs to $KUBECONFIG's cluster")
    group.add_argument("--remove-crds", action="store_true", help="delete the CRDs (and all Flux objects)")
    args = parser.parse_args(argv)
    try:
        if args.remove_crds:
            remove_crds()
            return 0
        build_all()
        if args.install_crds:
            for name in install_crds():
                print(f"established {name}", file=sys.stderr)
    except BuildError as exc:
        print(f"bench-build-flux: {exc}", file=sys.stderr)
        return 1
    print(bin_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
