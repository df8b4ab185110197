"""``hpcbox cluster`` and ``hpcbox images``: thin typer commands over ClusterManager."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hpcbox.cli.output import console, print_json
from hpcbox.clusters.spec import ClusterSpec, parse_cluster_spec, parse_cluster_yaml
from hpcbox.core.errors import InvalidInputError, UnavailableError
from hpcbox.core.settings import Settings

__all__ = ["cluster_app", "images_app"]

cluster_app = typer.Typer(
    help="Virtual SLURM + MPI clusters, and JupyterHub + ipyparallel clusters, on containers "
    "or Kubernetes.",
    no_args_is_help=True,
)
images_app = typer.Typer(help="Container images for cluster nodes.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _manager(host_ca: str | None = None) -> Any:
    # Imported here so that other commands do not pay for the container stack.
    from hpcbox.cli.output import RichReporter
    from hpcbox.clusters.manager import ClusterManager
    from hpcbox.clusters.store import ClusterStore
    from hpcbox.infra.db import open_engine

    settings = Settings.from_env()
    return ClusterManager(
        settings,
        store=ClusterStore(open_engine(settings)),
        progress=RichReporter(),
        host_ca=host_ca,
    )


HostCaOpt = Annotated[
    str | None,
    typer.Option(
        "--host-ca",
        help="CA bundle image builds trust (pip/npm behind a TLS-intercepting proxy): "
        "a PEM file, 'auto' (the system's bundle; the default) or 'none'. "
        "Env: HPCBOX_IMAGES_HOST_CA.",
    ),
]


def _load_spec(path: str) -> ClusterSpec:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror}", field="-f") from exc
    return parse_cluster_yaml(text)


def _spec_from_options(
    spec_file: str | None,
    name: str | None,
    workers: int | None,
    mpi: str | None,
    accounting: bool | None,
    kind: str | None,
    users: list[str] | None = None,
    runtime: str | None = None,
) -> ClusterSpec:
    if spec_file:
        spec = _load_spec(spec_file)
        data = spec.model_dump(mode="json")
    elif name:
        data = {"name": name}
    else:
        raise InvalidInputError("give -f SPEC or --name NAME", field="-f")
    if name:
        data["name"] = name
    if workers is not None:
        data.setdefault("workers", {})["count"] = workers
    if mpi is not None:
        data["mpi"] = mpi
    if accounting is not None:
        data["accounting"] = accounting
    if kind is not None:
        data["kind"] = kind
    if runtime is not None:
        data["runtime"] = runtime
    if users:
        from hpcbox.clusters.users import user_from_option

        given = [user_from_option(value) for value in users]
        names = {u["name"] for u in given}
        kept = [u for u in data.get("users", []) if u.get("name") not in names]
        data["users"] = kept + given
    return parse_cluster_spec(data)


@cluster_app.command("up")
def up(
    spec_file: Annotated[
        str | None, typer.Option("-f", "--file", help="Cluster spec YAML.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Cluster name.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker count.")] = None,
    mpi: Annotated[str | None, typer.Option("--mpi", help="openmpi or mpich.")] = None,
    accounting: Annotated[
        bool | None, typer.Option("--accounting/--no-accounting", help="slurmdbd + MariaDB.")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="slurm (default), jupyter or mpi.")
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option("--user", help="Add a user NAME:PASSWORD (hashed at once); repeatable."),
    ] = None,
    host_ca: HostCaOpt = None,
    runtime: Annotated[
        str | None,
        typer.Option(
            "--runtime",
            help="podman, docker, auto (containers here; the default), or kubernetes: "
            "the kind's Helm chart on the current kubeconfig context.",
        ),
    ] = None,
    kubeconfig: Annotated[
        str | None,
        typer.Option("--kubeconfig", help="kubernetes: the kubeconfig (default $KUBECONFIG)."),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="kubernetes: the kubeconfig context.")
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="kubernetes: the namespace (hpcbox-<name>)."),
    ] = None,
    image_tag: ImageTagOpt = None,
    image_prefix: ImagePrefixOpt = None,
    pull_policy: PullPolicyOpt = None,
    service_type: ServiceTypeOpt = None,
    storage_class: StorageClassOpt = None,
    keep_homes: KeepHomesOpt = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Take down a running cluster of that name first (homes kept)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Bring a cluster up (building missing images first) and wait until it is idle.

    Checks the container engine first (as `hpcbox doctor` does) and stops within
    seconds, with the fix, when it cannot run a cluster. A cluster of that name
    whose earlier up failed or was interrupted is cleaned up and brought up again.
    """
    spec = _spec_from_options(spec_file, name, workers, mpi, accounting, kind, user, runtime)
    manager = _manager(host_ca)
    if spec.runtime.value == "kubernetes":
        from hpcbox.clusters.kube import KubePlacement

        placement = KubePlacement.for_cluster(
            spec.name, namespace=namespace, kubeconfig=kubeconfig, context=context
        )
        options = _helm_options(
            image_tag, image_prefix, pull_policy, service_type or "NodePort",
            storage_class, None, None, keep_homes, None,
        )  # fmt: skip
        manager.up(spec, replace=replace, placement=placement, helm_options=options)
    else:
        manager.up(spec, replace=replace)
    status = manager.status(spec.name)
    if as_json:
        print_json(status.to_json())
    elif status.record.runtime == "kubernetes":
        ssh = status.ssh
        login = (
            f"; ssh -p {ssh['port']} -i {ssh['admin_key']} root@{ssh['host']}"
            if ssh.get("port") and ssh.get("host")
            else ""
        )
        console.print(
            f"cluster [bold]{spec.name}[/] is up on Kubernetes (namespace "
            f"{ssh['namespace']}): {status.record.workers} workers{login}"
        )
    elif status.record.kind == "jupyter":
        console.print(
            f"cluster [bold]{spec.name}[/] is up: JupyterHub at {status.hub_url}, "
            f"{status.engines} ipyparallel engines on {status.record.workers} workers"
        )
    else:
        ssh = status.ssh
        console.print(
            f"cluster [bold]{spec.name}[/] is up: {status.record.workers} workers; "
            f"ssh -p {ssh['port']} -i {ssh['admin_key']} root@127.0.0.1"
        )


@cluster_app.command("list")
def list_clusters(as_json: JsonOpt = False) -> None:
    """List clusters."""
    records = _manager().list_clusters()
    if as_json:
        print_json([r.to_json() for r in records])
        return
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "KIND", "STATE", "WORKERS", "RUNTIME", "SSH PORT"):
        table.add_column(column)
    for r in records:
        table.add_row(r.name, r.kind, r.state, str(r.workers), r.runtime, str(r.ssh_port or ""))
    console.print(table)


@cluster_app.command("status")
def status(name: str, as_json: JsonOpt = False) -> None:
    """Nodes and their SLURM states, partitions, the SSH endpoint and admin key."""
    st = _manager().status(name)
    if as_json:
        print_json(st.to_json())
        return
    console.print(f"[bold]{name}[/] {st.record.state} ({st.record.kind}, {st.record.runtime})")
    nodes = Table(box=None, header_style="bold")
    pod = st.record.runtime == "kubernetes"
    for column in ("NODE", "ROLE", "POD" if pod else "CONTAINER", "SLURM STATE", "PARTITIONS"):
        nodes.add_column(column)
    for n in st.nodes:
        nodes.add_row(
            n.name, n.role, n.container_status, n.slurm_state or "", ",".join(n.partitions)
        )
    console.print(nodes)
    for p in st.partitions:
        console.print(
            f"partition {p['name']}{' (default)' if p['default'] else ''}: "
            f"{p['nodes']} nodes, time limit {p['time_limit']}"
        )
    if st.hub_url is not None:
        console.print(f"JupyterHub: {st.hub_url}")
    if st.engines is not None:
        console.print(f"ipyparallel engines: {st.engines}")
    ssh = st.ssh
    if ssh["port"] is not None and ssh["host"] is not None:
        console.print(f"ssh: -p {ssh['port']} -i {ssh['admin_key']} root@{ssh['host']}")


@cluster_app.command(
    "exec", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def exec_(
    name: str,
    command: Annotated[list[str], typer.Argument(help="Command and arguments (after --).")],
    node: Annotated[
        str | None, typer.Option("--node", help="Node (default: controller, or hub).")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Run as this user.")] = None,
    stdin: Annotated[
        bool, typer.Option("--stdin", "-i", help="Pass this command's standard input on.")
    ] = False,
) -> None:
    """Run a command on a node; exits with its exit code."""
    data = sys.stdin.buffer.read() if stdin else None
    result = _manager().exec(name, command, node=node, user=user, stdin=data)
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    sys.stderr.flush()
    raise typer.Exit(result.exit_code)


@cluster_app.command("ssh")
def ssh(
    name: str,
    user: Annotated[str | None, typer.Option("--user", help="Log in as this user.")] = None,
) -> None:
    """Log in to the cluster's login node over SSH."""
    argv = _manager().ssh_argv(name, user=user)
    if shutil.which("ssh") is None:
        raise UnavailableError("no ssh client: apt-get install openssh-client")
    os.execvp(argv[0], argv)  # noqa: S606 - argv list, no shell; replaces this process


@cluster_app.command("scale")
def scale(
    name: str,
    workers: Annotated[int, typer.Option("--workers", help="New worker count.")],
    force: Annotated[
        bool, typer.Option("--force", help="Cancel jobs on removed nodes instead of waiting.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add or remove workers (with their ipyparallel engines on kind jupyter); a
    running job is never killed unless --force."""
    record = _manager().scale(name, workers, force=force)
    if as_json:
        print_json(record.to_json())
    else:
        console.print(f"cluster {name}: {record.workers} workers")


@cluster_app.command("down")
def down(
    name: str,
    purge: Annotated[bool, typer.Option("--purge", help="Also delete homes and keys.")] = False,
) -> None:
    """Remove the cluster's containers (homes kept unless --purge)."""
    _manager().down(name, purge=purge)
    console.print(f"cluster {name} is down" + (" and purged" if purge else " (homes kept)"))


ImageTagOpt = Annotated[
    str | None,
    typer.Option(
        "--image-tag",
        help="Tag of the node images (default: this hpcbox's version, the tag "
        "`hpcbox images build` gives and the charts name).",
    ),
]
ImagePrefixOpt = Annotated[
    str | None,
    typer.Option("--image-prefix", help="Images are PREFIX/<role>:TAG (default hpcbox)."),
]
ServiceTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--service-type",
        help="The SSH login Service (slurm) or the hub's (jupyter): ClusterIP, NodePort "
        "or LoadBalancer. With NodePort, the spec's login.ssh_port (jupyter.port) is the "
        "node port when not 0.",
    ),
]
StorageClassOpt = Annotated[
    str | None, typer.Option("--storage-class", help="Storage class of the claims.")
]
NfsServerOpt = Annotated[
    str | None, typer.Option("--nfs-server", help="Homes on this NFS server (with --nfs-path).")
]
NfsPathOpt = Annotated[str | None, typer.Option("--nfs-path", help="The NFS export of homes.")]
KeepHomesOpt = Annotated[
    bool | None,
    typer.Option(
        "--keep-homes/--no-keep-homes",
        help="Keep the homes claim when the release is uninstalled (the chart's default).",
    ),
]
IngressHostOpt = Annotated[
    str | None, typer.Option("--ingress-host", help="Kind jupyter: the hub's host name.")
]
PullPolicyOpt = Annotated[
    str | None,
    typer.Option("--pull-policy", help="IfNotPresent (the charts' default), Always or Never."),
]


def _helm_options(
    image_tag: str | None,
    image_prefix: str | None,
    pull_policy: str | None,
    service_type: str | None,
    storage_class: str | None,
    nfs_server: str | None,
    nfs_path: str | None,
    keep_homes: bool | None,
    ingress_host: str | None,
) -> Any:
    from hpcbox import __version__
    from hpcbox.clusters.render.helm import IMAGE_PREFIX, HelmOptions

    return HelmOptions(
        image_tag=image_tag or __version__,
        image_prefix=image_prefix or IMAGE_PREFIX,
        pull_policy=pull_policy,
        service_type=service_type,
        storage_class=storage_class,
        nfs_server=nfs_server,
        nfs_path=nfs_path,
        keep_homes=keep_homes,
        ingress_host=ingress_host,
    )


def _write(path: Path, text: str, *, secret: bool) -> None:
    fd = os.open(
        path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600 if secret else 0o644
    )
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@cluster_app.command("render")
def render(
    spec_file: Annotated[str, typer.Option("-f", "--file", help="Cluster spec YAML.")],
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="helm: the values file of the kind's chart (hpcbox-slurm for slurm and "
            "mpi, hpcbox-jupyter for jupyter). kubernetes: the chart's manifests for "
            "those values (helm template), one file each.",
        ),
    ] = "helm",
    out: Annotated[
        str, typer.Option("-o", "--output", help="Directory to write; '-': standard output.")
    ] = ".",
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="kubernetes: the namespace (hpcbox-<name>)."),
    ] = None,
    image_tag: ImageTagOpt = None,
    image_prefix: ImagePrefixOpt = None,
    pull_policy: PullPolicyOpt = None,
    service_type: ServiceTypeOpt = None,
    storage_class: StorageClassOpt = None,
    nfs_server: NfsServerOpt = None,
    nfs_path: NfsPathOpt = None,
    keep_homes: KeepHomesOpt = None,
    ingress_host: IngressHostOpt = None,
) -> None:
    """Render the spec for another target: Helm values, or Kubernetes manifests.

    One spec, many targets: `--target helm` writes values-<name>.yaml for
    `helm install <name> charts/<chart> -f values-<name>.yaml`; `--target kubernetes`
    writes what that install would apply (needs helm: HPCBOX_HELM, the one
    `scripts/kube.sh build` makes, or the PATH's), with a Namespace first.
    """
    from hpcbox.clusters.render.helm import chart_name, helm_values, values_yaml

    if target not in ("helm", "kubernetes"):
        raise InvalidInputError("one of helm, kubernetes", field="--target")
    spec = _load_spec(spec_file)
    options = _helm_options(
        image_tag, image_prefix, pull_policy, service_type, storage_class,
        nfs_server, nfs_path, keep_homes, ingress_host,
    )  # fmt: skip
    if target == "helm":
        text = values_yaml(spec, helm_values(spec, options))
        if out == "-":
            sys.stdout.write(text)
            return
        directory = Path(out)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"values-{spec.name}.yaml"
        # Password hashes may be in it: private, as a Secret's file is.
        _write(path, text, secret=True)
        console.print(f"wrote {path} (chart {chart_name(spec)})")
        return
    _render_manifests(spec, options, namespace, out)


def _render_manifests(spec: ClusterSpec, options: Any, namespace: str | None, out: str) -> None:
    import yaml

    from hpcbox.clusters.kube import charts_dir, render_manifests
    from hpcbox.infra.kube import Helm, find_tool

    settings = Settings.from_env()
    ns = namespace or f"hpcbox-{spec.name}"
    helm = Helm(find_tool("helm", settings.kube.helm))
    manifests = render_manifests(spec, helm, charts_dir(settings), namespace=ns, options=options)
    manifests.insert(0, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    if out == "-":
        sys.stdout.write(yaml.safe_dump_all(manifests, sort_keys=False))
        return
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    for index, manifest in enumerate(manifests):
        kind = str(manifest.get("kind", "object")).lower()
        name = manifest.get("metadata", {}).get("name", "unnamed")
        path = directory / f"{index:02d}-{kind}-{name}.yaml"
        _write(path, yaml.safe_dump(manifest, sort_keys=False), secret=kind == "secret")
    console.print(f"wrote {len(manifests)} manifests to {directory} (namespace {ns})")


@images_app.command("build")
def images_build(
    role: Annotated[list[str] | None, typer.Option("--role", help="Only these roles.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if present.")] = False,
    host_ca: Annotated[
        str | None,
        typer.Option(
            "--host-ca",
            help="CA bundle that build steps trust (pip/npm behind a TLS-intercepting "
            "proxy): a PEM file, 'auto' (the system's bundle; the default) or 'none'. "
            "Env: HPCBOX_IMAGES_HOST_CA.",
        ),
    ] = None,
    no_host_ca: Annotated[
        bool, typer.Option("--no-host-ca", help="Trust no host CA bundle (--host-ca none).")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Show the raw debootstrap, apt and podman output too."
        ),
    ] = False,
) -> None:
    """Build the node images (bootstrapping the Debian base offline if needed).

    Every build writes the tools' full output to a log under
    $HPCBOX_HOME/images/logs/; a failure names it.
    """
    from hpcbox.cli.output import RichReporter, print_error_detail
    from hpcbox.clusters.images import ROLES, ImageBuilder
    from hpcbox.core.errors import HpcboxError
    from hpcbox.infra.runtimes import connect_runtime

    settings = Settings.from_env()
    roles = list(role or ROLES)
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidInputError(f"unknown roles {unknown}; known: {list(ROLES)}", field="--role")
    if no_host_ca and host_ca is not None and host_ca.strip().lower() not in ("none", "off"):
        raise InvalidInputError("give --host-ca PATH or --no-host-ca, not both", field="--host-ca")
    reporter = RichReporter(verbose=verbose)
    runtime = connect_runtime("auto", state_dir=settings.home / "runtime")
    builder = ImageBuilder(
        runtime,
        state_dir=settings.home / "images",
        progress=reporter,
        host_ca="none" if no_host_ca else host_ca,
    )
    try:
        built = builder.build(roles, force=force)
    except HpcboxError as exc:
        print_error_detail(exc)
        raise
    console.print(f"built: {', '.join(built) if built else 'nothing (all present)'}")
