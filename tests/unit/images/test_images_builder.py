"""ImageBuilder: what it builds, in which order, and where the Debian base comes from."""

from __future__ import annotations

import fcntl
import shutil
import threading
import time
from pathlib import Path

import docker
import pytest

import hpcbox
from hpcbox.clusters.images import ROLES, ImageBuilder, image_tag, latest_tag, version_tag
from hpcbox.clusters.images import builder as builder_module
from hpcbox.clusters.images import hostca as hostca_module
from hpcbox.clusters.images.backends import DockerApiBackend, PodmanCliBackend
from hpcbox.clusters.images.builder import select_backend
from hpcbox.clusters.images.context import context_files
from hpcbox.clusters.images.debian import BOOTSTRAPPED_IMAGE, UPSTREAM_IMAGE
from hpcbox.clusters.images.hostca import CONTEXT_FILE
from hpcbox.core.errors import InvalidInputError, PermanentError, UnavailableError
from hpcbox.core.progress import LineReporter
from hpcbox.infra.runtimes import EngineRuntime
from tests.unit.images.fakes import FakeBackend, FakeImages, FakeRuntime, RecordingReporter

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def images() -> FakeImages:
    return FakeImages()


@pytest.fixture
def bootstraps(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Path]:
    """Replace debootstrap: record the state dirs it was asked to bootstrap in."""
    calls: list[Path] = []

    def fake_bootstrap(state_dir: Path, *, reporter: object) -> Path:
        calls.append(state_dir)
        return state_dir / "debian-bookworm-minbase.tar.gz"

    monkeypatch.setattr(builder_module, "bootstrap_rootfs", fake_bootstrap)
    return calls


def make(
    images: FakeImages,
    tmp_path: Path,
    *,
    host_ca: str | None = "none",
    environ: dict[str, str] | None = None,
    **backend_options: object,
) -> tuple[ImageBuilder, FakeBackend, list[str]]:
    lines: list[str] = []
    backend = FakeBackend(images, **backend_options)  # type: ignore[arg-type]
    builder = ImageBuilder(
        FakeRuntime(images),  # type: ignore[arg-type]
        state_dir=tmp_path / "images",
        progress=lines.append,
        backend=backend,
        host_ca=host_ca,
        environ=environ or {},
    )
    return builder, backend, lines


def test_missing_lists_absent_roles_in_the_order_asked(images: FakeImages, tmp_path: Path) -> None:
    builder, _, _ = make(images, tmp_path)
    assert builder.missing() == list(ROLES)
    images.tags.add(image_tag("slurm-worker"))
    # An image of another version does not count.
    images.tags.add("hpcbox/base:0.0.1")
    assert builder.missing(["slurm-worker", "mariadb", "base"]) == ["mariadb", "base"]


def test_offline_build_bootstraps_debian_then_builds_base_first(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path]
) -> None:
    builder, backend, lines = make(images, tmp_path)
    built = builder.build()
    assert built == [image_tag(role) for role in ROLES]
    assert backend.calls == [
        ("pull", UPSTREAM_IMAGE),
        ("import", "debian-bookworm-minbase.tar.gz", BOOTSTRAPPED_IMAGE),
        *(("build", role) for role in ROLES),
    ]
    assert bootstraps == [tmp_path / "images"]
    assert backend.build_args["base"] == {
        "HPCBOX_VERSION": hpcbox.__version__,
        "DEBIAN_IMAGE": BOOTSTRAPPED_IMAGE,
    }
    assert backend.build_args["slurm-worker"]["BASE_IMAGE"] == image_tag("base")
    assert backend.build_args["jupyter"]["BASE_IMAGE"] == image_tag("slurm-controller")
    assert backend.build_args["operator"] == {
        "HPCBOX_VERSION": hpcbox.__version__,
        "DEBIAN_IMAGE": BOOTSTRAPPED_IMAGE,
    }
    for role in ROLES:
        assert latest_tag(role) in images.tags
        # What the Helm charts name (their appVersion).
        assert version_tag(role) in images.tags
    assert builder.missing() == []
    assert any("bootstrapping" in line for line in lines)


def test_a_pullable_upstream_image_is_used(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path]
) -> None:
    builder, backend, _ = make(images, tmp_path, pullable=True)
    builder.build(["base"])
    assert bootstraps == []
    assert backend.build_args["base"]["DEBIAN_IMAGE"] == UPSTREAM_IMAGE


@pytest.mark.parametrize("present", [UPSTREAM_IMAGE, BOOTSTRAPPED_IMAGE])
def test_a_local_debian_image_is_used_without_pulling(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path], present: str
) -> None:
    images.tags.add(present)
    builder, backend, _ = make(images, tmp_path)
    builder.build(["base"])
    assert ("pull", UPSTREAM_IMAGE) not in backend.calls
    assert bootstraps == []
    assert backend.build_args["base"]["DEBIAN_IMAGE"] == present


def built(role: str) -> set[str]:
    """The three tags a build gives an image."""
    return {image_tag(role), version_tag(role), latest_tag(role)}


def test_nothing_to_do(images: FakeImages, tmp_path: Path) -> None:
    images.tags.update(t for role in ROLES for t in built(role))
    builder, backend, lines = make(images, tmp_path)
    assert builder.build() == []
    assert backend.calls == []
    assert lines == ["all images are present"]


def test_only_the_missing_worker_is_built(images: FakeImages, tmp_path: Path) -> None:
    images.tags.update(t for role in ROLES if role != "slurm-worker" for t in built(role))
    builder, backend, _ = make(images, tmp_path)
    assert builder.build() == [image_tag("slurm-worker")]
    assert backend.calls == [("build", "slurm-worker")]


def test_a_present_image_gets_the_tags_it_lacks(images: FakeImages, tmp_path: Path) -> None:
    # Built before images had a version tag: only the digest tag. Nothing is built, but
    # the charts' tag (hpcbox/<role>:<version>) must name it.
    images.tags.update(t for role in ROLES for t in built(role))
    images.tags -= {version_tag("slurmdbd"), latest_tag("slurmdbd"), latest_tag("mariadb")}
    builder, backend, lines = make(images, tmp_path)
    assert builder.build(["slurmdbd", "mariadb"]) == []
    assert backend.calls == [
        ("tag", image_tag("slurmdbd"), version_tag("slurmdbd"), latest_tag("slurmdbd")),
        ("tag", image_tag("mariadb"), latest_tag("mariadb")),
    ]
    assert {version_tag("slurmdbd"), latest_tag("mariadb")} <= images.tags
    assert f"tagged {image_tag('mariadb')} as {latest_tag('mariadb')}" in lines


def test_force_rebuilds_present_images(images: FakeImages, tmp_path: Path) -> None:
    images.tags.update(image_tag(role) for role in ROLES)
    images.tags.add(BOOTSTRAPPED_IMAGE)
    builder, backend, _ = make(images, tmp_path)
    assert builder.build(["base", "slurmdbd"], force=True) == [
        image_tag("base"),
        image_tag("slurmdbd"),
    ]
    assert [c for c in backend.calls if c[0] == "build"] == [
        ("build", "base"),
        ("build", "slurmdbd"),
    ]


def test_a_failed_build_stops_the_rest(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path]
) -> None:
    builder, backend, _ = make(images, tmp_path, fail_role="slurm-controller")
    with pytest.raises(PermanentError, match="slurm-controller"):
        builder.build()
    assert ("build", "slurm-worker") not in backend.calls
    assert builder.missing() == [
        "slurm-controller",
        "slurm-worker",
        "slurmdbd",
        "mariadb",
        "jupyter",
        "operator",
    ]


def test_select_backend_refuses_a_runtime_it_cannot_build_on(images: FakeImages) -> None:
    with pytest.raises(UnavailableError, match="cannot build"):
        select_backend(
            FakeRuntime(images, name="docker"),  # type: ignore[arg-type]
            reporter=LineReporter(lambda _: None),
            network_host=True,
        )


def engine(name: str, url: str, conf: Path | None = None) -> EngineRuntime:
    # With the API version given, the SDK contacts nothing until a call is made.
    client = docker.DockerClient(base_url="unix:///nonexistent/engine.sock", version="1.41")
    return EngineRuntime(client, name=name, url=url, containers_conf=conf)


def pick(runtime: EngineRuntime, monkeypatch: pytest.MonkeyPatch, podman: str | None) -> object:
    monkeypatch.setattr(shutil, "which", lambda name: podman)
    return select_backend(runtime, reporter=LineReporter(lambda _: None), network_host=True)


def test_local_podman_builds_with_the_cli_under_the_service_conf(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf = Path("/state/podman/containers.conf")
    backend = pick(
        engine("podman", "unix:///state/podman/podman.sock", conf), monkeypatch, "/usr/bin/podman"
    )
    assert isinstance(backend, PodmanCliBackend)
    assert backend._env["CONTAINERS_CONF"] == str(conf)


def test_docker_remote_podman_or_no_cli_build_through_the_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = [
        (engine("docker", "unix:///var/run/docker.sock"), "/usr/bin/podman"),
        (engine("podman", "ssh://builder.example.org"), "/usr/bin/podman"),
        (engine("podman", "unix:///run/podman/podman.sock"), None),
    ]
    for runtime, podman in cases:
        assert isinstance(pick(runtime, monkeypatch, podman), DockerApiBackend)


def test_a_plain_callable_gets_steps_as_lines_not_raw_output(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path]
) -> None:
    builder, backend, lines = make(images, tmp_path)
    backend.on_build = lambda role: builder._log.output(f"raw output of {role}")
    builder.build(["base"])
    assert any(line.startswith(f"building {image_tag('base')} (1 of 1)") for line in lines)
    assert any(
        line.startswith(f"building {image_tag('base')} (1 of 1): done in ") for line in lines
    )
    assert not any("raw output" in line for line in lines)


def test_a_reporter_gets_steps_waits_and_raw_output(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path]
) -> None:
    reporter = RecordingReporter()
    backend = FakeBackend(images)
    builder = ImageBuilder(
        FakeRuntime(images),  # type: ignore[arg-type]
        state_dir=tmp_path / "images",
        progress=reporter,
        backend=backend,
        host_ca="none",
    )
    backend.on_build = lambda role: builder._log.output(f"STEP 1/2: RUN make {role}")
    builder.build(["slurmdbd"])
    steps = reporter.of("step")
    assert steps[0] == f"looking for {UPSTREAM_IMAGE} | a registry"
    assert steps[1].startswith(f"importing the root filesystem as {BOOTSTRAPPED_IMAGE}")
    assert steps[2:] == [
        f"building {image_tag('base')} (1 of 2) | podman build",
        f"building {image_tag('slurmdbd')} (2 of 2) | podman build",
    ]
    assert reporter.of("output") == ["STEP 1/2: RUN make base", "STEP 1/2: RUN make slurmdbd"]


def test_every_build_writes_a_log_and_a_failure_names_it(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path]
) -> None:
    builder, backend, _ = make(images, tmp_path, fail_role="slurm-controller")
    backend.on_build = lambda role: builder._log.output(f"output of {role}")
    with pytest.raises(PermanentError) as caught:
        builder.build(["slurm-controller"])
    log = builder.log_path
    assert log is not None and log.parent == tmp_path / "images" / "logs"
    first, _, rest = str(caught.value).partition("\n")
    assert first == f"build {image_tag('slurm-controller')} failed (exit 1) (full log: {log})"
    assert rest == "last output:\nE: broken"
    text = log.read_text()
    assert "output of base" in text and "output of slurm-controller" in text
    assert f"==> building {image_tag('base')} (1 of 2)" in text
    assert f"<== building {image_tag('base')} (1 of 2): done in" in text
    assert f"<== building {image_tag('slurm-controller')} (2 of 2): failed after" in text
    assert log.stat().st_mode & 0o777 == 0o600


def test_nothing_to_build_writes_no_log(images: FakeImages, tmp_path: Path) -> None:
    images.tags.update(image_tag(role) for role in ROLES)
    builder, _, _ = make(images, tmp_path)
    builder.build()
    assert builder.log_path is None
    assert not (tmp_path / "images" / "logs").exists()


def test_the_host_ca_is_in_every_build_context(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path]
) -> None:
    bundle = tmp_path / "proxy-ca.pem"
    bundle.write_bytes(PEM)
    builder, backend, lines = make(images, tmp_path, host_ca=str(bundle))
    builder.build(["slurm-controller"])
    for role in ("base", "slurm-controller"):
        assert backend.contexts[role] == {**context_files(role), CONTEXT_FILE: PEM}
    assert any(f"build steps trust {bundle}" in line for line in lines)


def test_by_default_the_system_bundle_is_used(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    system = tmp_path / "etc-ssl-certs.crt"
    system.write_bytes(PEM)
    monkeypatch.setattr(hostca_module, "SYSTEM_BUNDLES", (str(tmp_path / "absent"), str(system)))
    # No host_ca given (as ClusterManager passes it): the default applies.
    builder, backend, _ = make(images, tmp_path, host_ca=None)
    builder.build(["base"])
    assert backend.contexts["base"][CONTEXT_FILE] == PEM
    # HPCBOX_IMAGES_HOST_CA=none turns it off.
    builder, backend, _ = make(
        images, tmp_path, host_ca=None, environ={"HPCBOX_IMAGES_HOST_CA": "none"}
    )
    builder.build(["base"], force=True)
    assert CONTEXT_FILE not in backend.contexts["base"]
    assert "hostca/README" in backend.contexts["base"]


def test_a_bad_host_ca_fails_before_any_build(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path]
) -> None:
    builder, backend, _ = make(images, tmp_path, host_ca=str(tmp_path / "missing.crt"))
    with pytest.raises(InvalidInputError, match="host_ca: no such file"):
        builder.build(["base"])
    assert backend.calls == []
    # Refused even when there is nothing to build: a typo shows at once.
    images.tags.update(image_tag(role) for role in ROLES)
    with pytest.raises(InvalidInputError, match="host_ca: no such file"):
        builder.build()


def test_a_second_build_waits_for_the_first_and_says_so(images: FakeImages, tmp_path: Path) -> None:
    images.tags.update(image_tag(role) for role in ROLES)
    reporter = RecordingReporter()
    builder = ImageBuilder(
        FakeRuntime(images),  # type: ignore[arg-type]
        state_dir=tmp_path / "images",
        progress=reporter,
        backend=FakeBackend(images),
    )
    (tmp_path / "images").mkdir()
    with (tmp_path / "images" / "build.lock").open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # another process's build
        release = threading.Timer(0.3, fcntl.flock, (other, fcntl.LOCK_UN))
        release.start()
        started = time.monotonic()
        assert builder.build() == []
        release.join()
    assert time.monotonic() - started >= 0.25
    assert reporter.of("step") == [
        "waiting for another hpcbox image build to finish"
        f" | the lock {tmp_path / 'images' / 'build.lock'}"
    ]
    assert reporter.of("done") == ["waiting for another hpcbox image build to finish"]


def test_debian_image_present_writes_no_log(images: FakeImages, tmp_path: Path) -> None:
    images.tags.add(BOOTSTRAPPED_IMAGE)
    builder, backend, _ = make(images, tmp_path)
    assert builder.debian_image() == BOOTSTRAPPED_IMAGE
    assert builder.log_path is None and backend.calls == []


def test_debian_image_bootstrapped_is_logged(
    images: FakeImages, tmp_path: Path, bootstraps: list[Path]
) -> None:
    builder, backend, _ = make(images, tmp_path)
    assert builder.debian_image() == BOOTSTRAPPED_IMAGE
    assert backend.calls[0] == ("pull", UPSTREAM_IMAGE)
    assert builder.log_path is not None
    assert f"no registry serves {UPSTREAM_IMAGE}" in builder.log_path.read_text()
