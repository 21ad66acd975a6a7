"""Who may use the client endpoint: the `default` user's password and ACL-file users.

Redis checks a password against the user named in `AUTH [user] pass` (`ACLCheckUserCredentials`):
the user must exist, be `on`, and either be `nopass` or hold the password (kept as its
SHA-256, as Redis keeps it). `--requirepass` sets the `default` user's password; an ACL file
(redis.conf's `aclfile` syntax: `user <name> <rule> ...`) adds users or redefines `default`.

Only the rules about logging in matter here: every user is read-only on a relay by nature,
so command, key and channel rules (`+@all`, `~*`, `&*`, ...) are accepted and ignored. A
malformed file is a configuration error naming its line, as Redis refuses to start.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from replproxy.config import ConfigError


@dataclass
class User:
    name: bytes
    enabled: bool = False
    nopass: bool = False
    passwords: set[str] = field(default_factory=set)  # SHA-256 hex digests

    def accepts(self, password: bytes) -> bool:
        if not self.enabled:
            return False
        return self.nopass or hashlib.sha256(password).hexdigest() in self.passwords


class Users:
    def __init__(self, requirepass: str | None = None, aclfile: Path | None = None) -> None:
        # Redis's built-in default user: on, nopass, until requirepass or the file says else.
        default = User(b"default", enabled=True, nopass=True)
        self.users: dict[bytes, User] = {b"default": default}
        if aclfile is not None:
            self._load(aclfile)
        if requirepass is not None:
            default = self.users[b"default"]
            default.nopass = False
            default.passwords = {hashlib.sha256(requirepass.encode()).hexdigest()}

    @property
    def default_needs_auth(self) -> bool:
        """A new connection starts as `default`; it must AUTH unless that user is nopass."""
        d = self.users[b"default"]
        return not (d.enabled and d.nopass)

    @property
    def default_has_password(self) -> bool:
        d = self.users[b"default"]
        return not d.nopass

    def check(self, username: bytes, password: bytes) -> bool:
        user = self.users.get(username)
        return user is not None and user.accepts(password)

    def _load(self, path: Path) -> None:
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(f"--aclfile {path}: {e.strerror}") from e
        seen: set[bytes] = set()
        for n, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            words = line.split()
            if words[0] != "user" or len(words) < 2:
                raise ConfigError(f"--aclfile {path}:{n}: lines must start with 'user <name>'")
            name = words[1].encode()
            if name in seen:
                raise ConfigError(f"--aclfile {path}:{n}: user '{words[1]}' defined twice")
            seen.add(name)
            user = User(name)
            for rule in words[2:]:
                _apply_rule(user, rule, f"--aclfile {path}:{n}")
            self.users[name] = user


def _apply_rule(user: User, rule: str, where: str) -> None:
    low = rule.lower()
    if low == "on":
        user.enabled = True
    elif low == "off":
        user.enabled = False
    elif low == "nopass":
        user.nopass = True
        user.passwords.clear()
    elif low == "resetpass":
        user.nopass = False
        user.passwords.clear()
    elif low == "reset":
        user.enabled = user.nopass = False
        user.passwords.clear()
    elif rule.startswith(">"):
        user.passwords.add(hashlib.sha256(rule[1:].encode()).hexdigest())
        user.nopass = False
    elif rule.startswith("<"):
        user.passwords.discard(hashlib.sha256(rule[1:].encode()).hexdigest())
    elif rule.startswith("#"):
        digest = rule[1:].lower()
        if len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
            raise ConfigError(f"{where}: '#' must be followed by a SHA-256 hex digest")
        user.passwords.add(digest)
        user.nopass = False
    elif rule.startswith("!"):
        user.passwords.discard(rule[1:].lower())
    # Everything else (commands, keys, channels, selectors) is about what a user may run;
    # every user of a relay may only read, so those rules change nothing here.
