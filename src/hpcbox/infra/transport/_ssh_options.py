"""Translate an :class:`SshTarget` into asyncssh connect options, and asyncssh errors back.

Kept apart from the connection logic so that the security-relevant choices
(which host keys are trusted, which credentials are offered) can be read and
unit-tested in one place without a server.
"""

from __future__ import annotations

import os
from typing import Any

import asyncssh

from hpcbox.core.errors import (
    HpcboxError,
    InvalidInputError,
    PermanentError,
    TransientError,
    UnavailableError,
)
from hpcbox.infra.transport.target import SshTarget

__all__ = ["connect_error", "connect_options", "is_retryable"]

#: Unanswered keepalives before the link counts as dead (OpenSSH's default too).
_KEEPALIVE_COUNT_MAX = 3


def _trusted_host_keys(target: SshTarget) -> object:
    if target.host_key is not None:
        try:
            key = asyncssh.import_public_key(target.host_key)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise InvalidInputError(
                f"not an OpenSSH public key line: {exc}", field="host_key"
            ) from exc
        # (trusted host keys, trusted CA keys, revoked keys): exactly this key,
        # whatever name or address the host is reached by.
        return ([key], [], [])
    if target.known_hosts_data is not None:
        try:
            return asyncssh.import_known_hosts(target.known_hosts_data)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise InvalidInputError(
                f"not a known_hosts text: {exc}", field="known_hosts_data"
            ) from exc
    path = os.path.expanduser(target.known_hosts or "~/.ssh/known_hosts")
    # Checked here because asyncssh would quietly treat a missing default file
    # as empty, and a missing explicit file as a (retryable) OSError.
    if not os.path.isfile(path):
        raise PermanentError(
            f"cannot verify the host key of {target.address}: no known_hosts file at {path}; "
            "add the host's key there or give the target a host_key"
        )
    return path


def _client_keys(target: SshTarget) -> object:
    # Keys are loaded here, once, so a bad key is reported as bad input rather
    # than retried as if the network had failed.
    try:
        if target.key_data is not None:
            return [asyncssh.import_private_key(target.key_data, target.passphrase)]
        if target.key_path is not None:
            return asyncssh.load_keypairs(os.path.expanduser(target.key_path), target.passphrase)
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
        if "bcrypt" in str(exc):
            # ssh-keygen's default format encrypts keys with bcrypt's KDF,
            # an optional dependency of asyncssh.
            raise UnavailableError(
                "decrypting an OpenSSH-format private key needs the bcrypt package "
                "(pip install 'asyncssh[bcrypt]')"
            ) from exc
        field = "key_data" if target.key_data is not None else "key_path"
        # The exception text names the problem, never the key material.
        raise InvalidInputError(f"cannot load the private key: {exc}", field=field) from exc
    except OSError as exc:
        raise InvalidInputError(
            f"cannot read {target.key_path}: {exc.strerror or exc}", field="key_path"
        ) from exc
    # None given: asyncssh's default, the unencrypted keys in ~/.ssh, like ssh(1).
    return ()


def connect_options(target: SshTarget) -> dict[str, Any]:
    """Return keyword arguments for :func:`asyncssh.connect` (host and port included).

    Raises:
        InvalidInputError: the host key or a private key cannot be parsed.
        PermanentError: there is nothing to verify the host key against.
        UnavailableError: the key is encrypted in a way that needs bcrypt.
    """
    options: dict[str, Any] = {
        "host": target.host,
        "port": target.port,
        "username": target.user,
        "known_hosts": _trusted_host_keys(target),
        "client_keys": _client_keys(target),
        # None disables the agent; () means asyncssh's default, $SSH_AUTH_SOCK.
        "agent_path": () if target.use_agent else None,
        # No password means no password or keyboard-interactive attempt at all.
        "password": target.password,
        "keepalive_interval": target.keepalive_s,
        "keepalive_count_max": _KEEPALIVE_COUNT_MAX,
        "connect_timeout": target.connect_timeout_s,
        "login_timeout": target.connect_timeout_s,
        # Not ~/.ssh/config: its Host blocks could silently redirect a target.
        "config": None,
    }
    if target.key_path is None and target.key_data is None:
        del options["client_keys"]
    return options


def is_retryable(exc: BaseException) -> bool:
    """True for failures a later connection attempt may not hit (network, timeouts).

    Host-key and authentication failures are not: the next attempt would be
    refused the same way.
    """
    if isinstance(exc, asyncssh.HostKeyNotVerifiable | asyncssh.PermissionDenied):
        return False
    if isinstance(exc, asyncssh.IllegalUserName):
        return False
    return isinstance(exc, OSError | TimeoutError | asyncssh.DisconnectError)


def connect_error(target: SshTarget, exc: BaseException) -> HpcboxError:
    """Translate the last failed connection attempt into hpcbox's hierarchy."""
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return PermanentError(
            f"host key of {target.address} not verified ({exc}); "
            "if the host was legitimately re-keyed, update known_hosts or host_key"
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return PermanentError(f"authentication failed for {target.address}: {exc}")
    if isinstance(exc, asyncssh.IllegalUserName):
        return InvalidInputError(str(exc), field="user")
    reason = str(exc) or type(exc).__name__
    return TransientError(f"target unreachable: {target.address}: {reason}", retry_after=5.0)
