"""Users given on the command line (``--user NAME:PASSWORD``): the password is hashed
at once and only its hash goes into the spec (and the database)."""

from __future__ import annotations

import bcrypt

from hpcbox.core.errors import InvalidInputError

__all__ = ["hash_password", "user_from_option"]


def hash_password(password: str) -> str:
    """A crypt(3) bcrypt hash (``$2b$``) that PAM on the nodes (libxcrypt) verifies."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def user_from_option(value: str) -> dict[str, str]:
    """``NAME:PASSWORD`` -> a user entry for the spec, with the password hashed.

    Raises InvalidInputError (field ``--user``) when either part is empty; the
    message never repeats the password.
    """
    name, sep, password = value.partition(":")
    if not sep or not name or not password:
        raise InvalidInputError("give NAME:PASSWORD (both non-empty)", field="--user")
    if len(password.encode()) > 72:
        # bcrypt looks at the first 72 bytes only: refuse rather than truncate silently.
        raise InvalidInputError("passwords are at most 72 bytes", field="--user")
    return {"name": name, "password_hash": hash_password(password)}
