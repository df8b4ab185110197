"""Which CA bundle image builds trust: the system's by default, a given file, or none."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcbox.clusters.images import hostca
from hpcbox.clusters.images.hostca import (
    CONTEXT_FILE,
    SYSTEM_BUNDLES,
    HostCa,
    host_ca_context,
    resolve_host_ca,
)
from hpcbox.core.errors import InvalidInputError

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins for the standard paths: the first absent, the second a bundle."""
    bundle = tmp_path / "system" / "ca-bundle.crt"
    bundle.parent.mkdir()
    bundle.write_bytes(PEM)
    monkeypatch.setattr(hostca, "SYSTEM_BUNDLES", (str(tmp_path / "absent.crt"), str(bundle)))
    return bundle


def test_the_standard_list_starts_with_debian_and_covers_the_big_families() -> None:
    assert SYSTEM_BUNDLES[0] == "/etc/ssl/certs/ca-certificates.crt"
    assert "/etc/pki/tls/certs/ca-bundle.crt" in SYSTEM_BUNDLES  # Fedora, RHEL
    assert "/etc/ssl/cert.pem" in SYSTEM_BUNDLES  # Alpine


def test_default_is_the_system_bundle(system: Path) -> None:
    assert resolve_host_ca(None, {}) == HostCa(system, origin="the system's CA bundle")
    assert resolve_host_ca("auto", {}) == HostCa(system, origin="the system's CA bundle")


def test_no_system_bundle_means_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty.crt"
    empty.write_bytes(b"")  # present but no certificate: not a bundle
    monkeypatch.setattr(hostca, "SYSTEM_BUNDLES", (str(tmp_path / "absent.crt"), str(empty)))
    assert resolve_host_ca(None, {}) is None


def test_ssl_cert_file_comes_first_in_auto(system: Path, tmp_path: Path) -> None:
    custom = tmp_path / "proxy.pem"
    custom.write_bytes(PEM)
    assert resolve_host_ca(None, {"SSL_CERT_FILE": str(custom)}) == HostCa(
        custom, origin="SSL_CERT_FILE"
    )
    # One that is not a bundle is passed over, as OpenSSL would fail with it.
    assert resolve_host_ca(None, {"SSL_CERT_FILE": str(tmp_path / "nope")}) == HostCa(
        system, origin="the system's CA bundle"
    )


@pytest.mark.parametrize("off", ["none", "NONE", "off", " no ", "false", "0"])
def test_off(system: Path, off: str) -> None:
    assert resolve_host_ca(off, {}) is None
    assert resolve_host_ca(None, {"HPCBOX_IMAGES_HOST_CA": off}) is None


def test_the_option_beats_the_environment(system: Path, tmp_path: Path) -> None:
    given = tmp_path / "given.pem"
    given.write_bytes(PEM)
    env = {"HPCBOX_IMAGES_HOST_CA": "none"}
    assert resolve_host_ca(str(given), env) == HostCa(given, origin=f"host_ca={given}")
    assert resolve_host_ca(None, {"HPCBOX_IMAGES_HOST_CA": str(given)}) == HostCa(
        given, origin=f"HPCBOX_IMAGES_HOST_CA={given}"
    )


def test_a_bad_explicit_choice_is_refused_naming_where_it_came_from(tmp_path: Path) -> None:
    not_pem = tmp_path / "key.txt"
    not_pem.write_text("hello")
    cases = [
        ("relative.crt", "host_ca: must be an absolute path"),
        (str(tmp_path / "missing.crt"), "host_ca: no such file"),
        (str(not_pem), "host_ca: no PEM certificate"),
        (str(tmp_path), "host_ca: cannot read"),
    ]
    for value, message in cases:
        with pytest.raises(InvalidInputError, match=message):
            resolve_host_ca(value, {})
    with pytest.raises(InvalidInputError, match="HPCBOX_IMAGES_HOST_CA: no such file"):
        resolve_host_ca(None, {"HPCBOX_IMAGES_HOST_CA": str(tmp_path / "missing.crt")})


def test_context_files(tmp_path: Path) -> None:
    bundle = tmp_path / "b.pem"
    bundle.write_bytes(PEM)
    assert host_ca_context(HostCa(bundle, origin="test")) == {CONTEXT_FILE: PEM}
    placeholder = host_ca_context(None)
    assert CONTEXT_FILE not in placeholder
    assert list(placeholder) == ["hostca/README"]
