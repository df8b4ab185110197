"""The machine's CA bundle, handed to image builds so pip and npm trust what the machine trusts.

Behind a TLS-intercepting proxy (a company's, or this project's CI) pip and
npm inside a fresh image reject every certificate: the image trusts Debian's
CAs, not the proxy's. The machine itself already trusts the proxy through its
system CA bundle, so by default builds use that bundle — found at the first
of :data:`SYSTEM_BUNDLES` that exists, or where ``SSL_CERT_FILE`` points. On a
machine without such a proxy the bundle holds the ordinary public CAs and
changes nothing.

The choice, from the ``host_ca`` option or ``HPCBOX_IMAGES_HOST_CA``:

- unset or ``auto``: the system's bundle when there is one, else none;
- ``none`` (or ``off``): no bundle;
- an absolute path: that PEM file (an error if it is missing or holds no
  certificate).

The bundle enters a build only as a file of the build context that a build
stage copies to ``/hostca/``; the final images never hold it
(see ``containerfiles/jupyter/Containerfile``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hpcbox.core.errors import InvalidInputError
from hpcbox.core.settings import ImagesSettings

__all__ = [
    "CONTEXT_DIR",
    "CONTEXT_FILE",
    "ENV_VAR",
    "SYSTEM_BUNDLES",
    "HostCa",
    "host_ca_context",
    "resolve_host_ca",
]

ENV_VAR = ImagesSettings.env_name("host_ca")
#: Where Linux systems keep their CA bundle (the list Go's crypto/x509 searches).
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Arch, Gentoo
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL 6
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/pki/tls/cacert.pem",  # OpenELEC
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # CentOS, RHEL 7+
    "/etc/ssl/cert.pem",  # Alpine
)
#: The build context's directory for the bundle; a build stage copies it to /hostca/.
CONTEXT_DIR = "hostca"
CONTEXT_FILE = f"{CONTEXT_DIR}/ca-certificates.crt"
#: Put in the context instead when there is no bundle, so COPY always has a source.
_PLACEHOLDER = f"{CONTEXT_DIR}/README"
_OFF = frozenset({"none", "off", "no", "false", "0"})
_PEM_MARK = b"-----BEGIN CERTIFICATE-----"


@dataclass(frozen=True)
class HostCa:
    """A CA bundle chosen for image builds, and why (for the progress line)."""

    path: Path
    origin: str


def resolve_host_ca(choice: str | None, environ: Mapping[str, str] | None = None) -> HostCa | None:
    """The bundle builds should trust, or None (see the module's doc for ``choice``).

    ``choice`` None falls back to ``HPCBOX_IMAGES_HOST_CA``, then to ``auto``.
    Raises InvalidInputError for an explicit path that is not an absolute,
    readable PEM file.
    """
    env = os.environ if environ is None else environ
    field = "host_ca"
    if choice is None or not choice.strip():
        choice = ImagesSettings.from_env(env).host_ca or "auto"
        field = ENV_VAR
    value = choice.strip()
    if value.lower() in _OFF:
        return None
    if value.lower() == "auto":
        return _system_bundle(env)
    path = Path(value)
    if not path.is_absolute():
        raise InvalidInputError(
            f"must be an absolute path, 'auto' or 'none': {value!r}", field=field
        )
    problem = _problem(path)
    if problem is not None:
        raise InvalidInputError(problem, field=field)
    return HostCa(path, origin=f"{field}={value}")


def host_ca_context(host_ca: HostCa | None) -> dict[str, bytes]:
    """The files a build context gets for ``host_ca``: the bundle, or a placeholder."""
    if host_ca is None:
        return {_PLACEHOLDER: b"No CA bundle was given to this build.\n"}
    try:
        data = host_ca.path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read {host_ca.path}: {exc.strerror}", field="host_ca"
        ) from exc
    return {CONTEXT_FILE: data}


def _system_bundle(env: Mapping[str, str]) -> HostCa | None:
    override = env.get("SSL_CERT_FILE")
    if override and Path(override).is_absolute() and _problem(Path(override)) is None:
        return HostCa(Path(override), origin="SSL_CERT_FILE")
    for candidate in SYSTEM_BUNDLES:
        path = Path(candidate)
        if _problem(path) is None:
            return HostCa(path, origin="the system's CA bundle")
    return None


def _problem(path: Path) -> str | None:
    """Why ``path`` is no usable PEM bundle, or None when it is one."""
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 20)
    except FileNotFoundError:
        return f"no such file: {path}"
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if _PEM_MARK not in head:
        return f"no PEM certificate in {path}"
    return None
