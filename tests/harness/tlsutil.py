"""Certificates made for a test (`trustme`), and real servers and relays speaking TLS.

A TLS-only redis-server (`--port 0 --tls-port N`) and a relay on its TLS port are used like
their plain counterparts: `client()` carries the TLS options, so the shared helpers (the
workload, INFO, DEBUG DIGEST) work unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import trustme

from tests.harness.relay import RelayProcess, start_relay
from tests.harness.servers import RedisServer, ServerKind, free_port, start_server, wait_until_up


@dataclass
class Certs:
    """A CA and the files of what it issued, in `dir`."""

    dir: Path
    ca: trustme.CA = field(default_factory=trustme.CA)

    @property
    def ca_file(self) -> Path:
        path = self.dir / f"ca-{id(self.ca)}.pem"
        if not path.exists():
            self.ca.cert_pem.write_to_path(str(path))
        return path

    def issue(
        self, name: str, *identities: str, not_after: datetime.datetime | None = None
    ) -> tuple[Path, Path]:
        """A certificate for `identities` (default 127.0.0.1), as (cert file, key file)."""
        kw: dict[str, Any] = {}
        if not_after is not None:
            kw = {"not_before": not_after - datetime.timedelta(days=30), "not_after": not_after}
        leaf = self.ca.issue_cert(*(identities or ("127.0.0.1",)), **kw)
        cert, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        cert.write_bytes(b"".join(b.bytes() for b in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        return cert, key

    def client_kwargs(self) -> dict[str, Any]:
        """redis-py options: verify with this CA, present a certificate of it."""
        cert, key = self.dir / "test-client.crt", self.dir / "test-client.key"
        if not cert.exists():
            self.issue("test-client")
        return {
            "ssl": True,
            "ssl_ca_certs": str(self.ca_file),
            "ssl_certfile": str(cert),
            "ssl_keyfile": str(key),
        }

    def http_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        return ctx


def server_tls_conf(
    certs: Certs, name: str, port: int, auth_clients: str = "yes"
) -> dict[str, str]:
    cert, key = certs.issue(name)
    return {
        "port": "0",
        "tls-port": str(port),
        "tls-cert-file": str(cert),
        "tls-key-file": str(key),
        "tls-ca-cert-file": str(certs.ca_file),
        "tls-auth-clients": auth_clients,
    }


@dataclass
class TlsRedisServer(RedisServer):
    """A redis-server listening on a TLS port only (`port` is that TLS port)."""

    tls_kwargs: dict[str, Any] = field(default_factory=dict)

    def client(self, **kw: object) -> redis.Redis:
        return super().client(**{**self.tls_kwargs, **kw})


def start_tls_server(
    kind: ServerKind,
    certs: Certs,
    name: str,
    *,
    extra: dict[str, str] | None = None,
    auth_clients: str = "yes",
    client_kwargs: dict[str, Any] | None = None,
) -> TlsRedisServer:
    port = free_port()
    conf = server_tls_conf(certs, name, port, auth_clients)
    conf.update(extra or {})
    plain = start_server(kind, port=port, extra=conf, wait=False)
    fields = {f.name: getattr(plain, f.name) for f in dataclasses.fields(RedisServer)}
    server = TlsRedisServer(**fields, tls_kwargs=client_kwargs or certs.client_kwargs())
    wait_until_up(server)
    return server


@dataclass
class TlsRelay(RelayProcess):
    """A relay reached on its TLS port (`port`); `plain_port` is its plain one, if any."""

    tls_kwargs: dict[str, Any] = field(default_factory=dict)
    plain_port: int = 0

    def client(self, **kw: object) -> redis.Redis:
        return super().client(**{**self.tls_kwargs, **kw})


def relay_tls_args(certs: Certs, tls_port: int, *, plain: bool = False) -> list[str]:
    cert, key = certs.issue(f"relay-{tls_port}")
    return [
        *([] if plain else ["--port", "0"]),
        "--tls-port",
        str(tls_port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(certs.ca_file),
    ]


def start_tls_relay(
    upstream: str, certs: Certs, *args: str, plain: bool = False, **kw: Any
) -> TlsRelay:
    """A relay with a TLS client port (and no plain one unless `plain`)."""
    tls_port = free_port()
    relay = start_relay(upstream, *relay_tls_args(certs, tls_port, plain=plain), *args, **kw)
    fields = {f.name: getattr(relay, f.name) for f in dataclasses.fields(RelayProcess)}
    fields["port"] = tls_port
    return TlsRelay(
        **fields, tls_kwargs=certs.client_kwargs(), plain_port=relay.port if plain else 0
    )
