"""What a JupyterHub front end and its ipyparallel engines are configured with.

Pure: names, paths and ports the node images, the node start-up script and the
runtimes agree on, and the ``jupyterhub_config.py`` rendered from a spec.

The design, in short: JupyterHub (PAM login against the spec's hashed
passwords, one JupyterLab per user started as that user on the front end) and
one ``ipcontroller`` run on the front end; the controller listens on the
cluster network and writes its connection files to the shared home volume
(:data:`IPP_DIR`); every worker runs ``engines_per_worker`` ``ipengine`` s that
register with it. Controller and engines run as the unprivileged
``ipyparallel`` account. When a user's server starts, it copies the client
connection file into the user's default IPython profile, so
``ipyparallel.Client()`` with no arguments connects from any notebook.
"""

from __future__ import annotations

from hpcbox.clusters.render.layout import CONTROLLER_HOST
from hpcbox.clusters.spec import ClusterKind, ClusterSpec

__all__ = [
    "CLIENT_FILE",
    "ENGINE_FILE",
    "HUB_CONFIG",
    "HUB_HOST",
    "HUB_PORT",
    "HUB_STATE_DIR",
    "IPP_DIR",
    "IPP_USER",
    "front_host",
    "render_jupyterhub_config",
]

#: The front end of a ``jupyter`` cluster: JupyterHub, the proxy, ipcontroller.
HUB_HOST = "hub"
#: Where configurable-http-proxy serves the hub inside the front end.
HUB_PORT = 8000
HUB_CONFIG = "/etc/jupyterhub/jupyterhub_config.py"
#: The hub's database and cookie secret (inside the front end, never on /home).
HUB_STATE_DIR = "/srv/jupyterhub"
#: The controller's profile directory, on the shared home volume.
IPP_DIR = "/home/.hpcbox/ipyparallel"
CLIENT_FILE = f"{IPP_DIR}/security/ipcontroller-client.json"
ENGINE_FILE = f"{IPP_DIR}/security/ipcontroller-engine.json"
#: The system account (made in the image) that runs ipcontroller and ipengines.
IPP_USER = "ipyparallel"
_SINGLEUSER = "/usr/local/bin/hpcbox-singleuser"


def front_host(spec: ClusterSpec) -> str:
    """The node users log in to: ``hub`` for kind jupyter, else the SLURM controller."""
    return HUB_HOST if spec.kind is ClusterKind.JUPYTER else CONTROLLER_HOST


def render_jupyterhub_config(spec: ClusterSpec) -> str:
    """``jupyterhub_config.py`` for ``spec``: the spec's users only, PAM login
    (their hashed passwords are in the node's /etc/shadow), one JupyterLab each,
    started as the user in their shared home.

    User names are validated by the spec (``[a-z_][a-z0-9_-]*``), so ``repr``
    of them is a safe Python literal.
    """
    users = sorted(u.name for u in spec.users)
    return f"""# jupyterhub_config.py for hpcbox cluster {spec.name!r}.
# Rendered by hpcbox at every `hpcbox cluster up`: edits here are overwritten.
c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

c.JupyterHub.bind_url = "http://:{HUB_PORT}"
# The hub's own API stays inside the node; only the proxy is published.
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = "sqlite:///{HUB_STATE_DIR}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{HUB_STATE_DIR}/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "{HUB_STATE_DIR}/jupyterhub-proxy.pid"

# Log in with the password whose hash the cluster spec holds (PAM reads /etc/shadow).
c.JupyterHub.authenticator_class = "pam"
# pam_loginuid and friends cannot open sessions inside a container.
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = set({users!r})

# One JupyterLab per user, on this node, as that user, in the shared home.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [{_SINGLEUSER!r}]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
"""
