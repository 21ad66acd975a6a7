"""TLS: the settings (redis.conf's `tls-*` names), the SSL contexts built from them, handshakes.

This module owns every `ssl.SSLContext` the relay uses, so all its TLS endpoints follow one
configuration:

- the **server** context: the client port `--tls-port` (clients and downstream replicas,
  whose `SYNC`/`PSYNC` arrives there too), with `--tls-auth-clients` deciding whether client
  certificates are required (`yes`, Redis's default), accepted (`optional`) or not asked
  (`no`);
- the **metrics** context: the HTTP endpoint with `--metrics-tls yes`, the same certificate,
  never asking for a client certificate (Kubernetes probes cannot present one);
- the **client** context: the link to the master (`rediss://` or `--tls-replication yes`),
  the connections to Sentinels (`--sentinel-tls yes`), and - through
  `redis_py_ssl_kwargs` - any redis-py connection to the master.

Semantics follow Redis 7.0's `tls.c`: `tls-cert-file`/`tls-key-file` (with
`tls-key-file-pass`) serve and, unless `tls-client-cert-file`/`tls-client-key-file` are set,
also identify the relay to its master; `tls-ca-cert-file`/`tls-ca-cert-dir` verify peers;
`tls-protocols` defaults to TLSv1.2 and TLSv1.3; `tls-ciphers` (TLS <= 1.2) and
`tls-ciphersuites` (TLS 1.3). Two differences, both on the client side, as `redis-cli` and
every client library behave: without a CA setting the system's trust store verifies the
master, and the master's host name is sent (SNI) and checked against its certificate
(`--tls-verify-hostname no` turns the name check off; the chain is always verified).

Reloading (`TlsContexts.reload`, on SIGHUP) rebuilds every context from the files; it is
atomic, as `tlsConfigure`: if any file fails, the contexts in use stay. Connections already
open keep the context they were made with.

It reads certificate files and nothing else; it never opens sockets of its own (the
handshake helpers wrap a stream they are given).
"""

from __future__ import annotations

import ctypes
import logging
import ssl
from pathlib import Path
from typing import Any

import trio

from replproxy.config import ConfigError, TlsSettings, parse_protocols

log = logging.getLogger("replproxy.tls")

HANDSHAKE_TIMEOUT = 10.0  # seconds an accepted connection may take to finish its handshake


# ---- contexts ----


def _fail(what: str, err: Exception) -> ConfigError:
    return ConfigError(f"TLS: {what}: {err}")


def _base(s: TlsSettings, side: ssl._SSLMethod) -> ssl.SSLContext:
    ctx = ssl.SSLContext(side)
    ctx.minimum_version, ctx.maximum_version = parse_protocols(s.protocols)
    ctx.options |= ssl.OP_NO_COMPRESSION
    if s.ciphers:
        try:
            ctx.set_ciphers(s.ciphers)
        except ssl.SSLError as e:
            raise _fail(f"Failed to configure ciphers: {s.ciphers}", e) from e
    if s.ciphersuites:
        set_ciphersuites(ctx, s.ciphersuites)
    if s.has_ca:
        try:
            ctx.load_verify_locations(
                cafile=str(s.ca_cert_file) if s.ca_cert_file else None,
                capath=str(s.ca_cert_dir) if s.ca_cert_dir else None,
            )
        except (OSError, ssl.SSLError) as e:
            raise _fail("Failed to configure CA certificate(s) file/directory", e) from e
    return ctx


def _load_identity(ctx: ssl.SSLContext, cert: Path, key: Path, password: str | None) -> None:
    try:
        ctx.load_cert_chain(str(cert), str(key), password)
    except (OSError, ssl.SSLError) as e:
        raise _fail(f"Failed to load certificate {cert} / private key {key}", e) from e


def server_context(s: TlsSettings, *, ask_client_cert: bool = True) -> ssl.SSLContext:
    """The context of the TLS client port (and, without client certificates, of HTTPS)."""
    assert s.cert_file is not None and s.key_file is not None
    ctx = _base(s, ssl.PROTOCOL_TLS_SERVER)
    _load_identity(ctx, s.cert_file, s.key_file, s.key_file_pass)
    mode = s.auth_clients if ask_client_cert else "no"
    ctx.verify_mode = {
        "no": ssl.CERT_NONE,
        "optional": ssl.CERT_OPTIONAL,
        "yes": ssl.CERT_REQUIRED,
    }[mode]
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    if s.prefer_server_ciphers:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    if s.dh_params_file is not None:
        try:
            ctx.load_dh_params(str(s.dh_params_file))
        except (OSError, ssl.SSLError) as e:
            raise _fail(f"Failed to load DH params file {s.dh_params_file}", e) from e
    return ctx


def client_context(s: TlsSettings) -> ssl.SSLContext:
    """The context of connections the relay makes: to the master, to Sentinels."""
    ctx = _base(s, ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    if not s.has_ca:
        ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    ctx.check_hostname = s.verify_hostname
    identity = s.client_identity()
    if identity is not None:
        _load_identity(ctx, *identity)
    return ctx


class TlsContexts:
    """The contexts in use, rebuilt together by `reload` (SIGHUP)."""

    def __init__(self, settings: TlsSettings, *, client: bool) -> None:
        self.settings = settings
        self._want_client = client
        self.server: ssl.SSLContext | None = None
        self.metrics: ssl.SSLContext | None = None
        self.client: ssl.SSLContext | None = None
        self.reloads = 0
        self._install(*self._build())

    @property
    def enabled(self) -> bool:
        return any(c is not None for c in (self.server, self.metrics, self.client))

    def _build(
        self,
    ) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None, ssl.SSLContext | None]:
        s = self.settings
        server = server_context(s) if s.port else None
        metrics = server_context(s, ask_client_cert=False) if s.metrics else None
        client = client_context(s) if self._want_client else None
        return server, metrics, client

    def _install(
        self,
        server: ssl.SSLContext | None,
        metrics: ssl.SSLContext | None,
        client: ssl.SSLContext | None,
    ) -> None:
        self.server, self.metrics, self.client = server, metrics, client

    def reload(self) -> bool:
        """Read the certificate, key and CA files again; keep the old contexts on error."""
        if not self.enabled:
            log.info("SIGHUP: no TLS configured, nothing to reload")
            return False
        try:
            built = self._build()
        except ConfigError as e:
            log.error("TLS reload failed, the certificates in use stay: %s", e)
            return False
        self._install(*built)
        self.reloads += 1
        log.info("TLS certificates reloaded; new connections use them")
        return True


# ---- TLS 1.3 cipher suites ----


def _libssl() -> ctypes.CDLL | None:
    """The libssl the `ssl` module runs on (already loaded: found through /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "/libssl.so" in path:
                    return ctypes.CDLL(path)
    except OSError:
        pass
    return None


def set_ciphersuites(ctx: ssl.SSLContext, suites: str) -> None:
    """`SSL_CTX_set_ciphersuites`, which Python's ssl module does not offer (TLS 1.3 suites).

    The `SSL_CTX *` is the first field of CPython's context object; it is only used after
    libssl confirms it (`SSL_CTX_get_options` must give the options Python reports), so a
    build where that does not hold refuses the setting instead of guessing.
    """
    lib = _libssl()
    unsupported = ConfigError(
        "--tls-ciphersuites is not supported with this Python's ssl module (libssl not found)"
    )
    if lib is None:
        raise unsupported
    try:
        get_options = lib.SSL_CTX_get_options
        setter = lib.SSL_CTX_set_ciphersuites
    except AttributeError:
        raise unsupported from None
    get_options.restype = ctypes.c_uint64
    get_options.argtypes = [ctypes.c_void_p]
    setter.restype = ctypes.c_int
    setter.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not ptr or get_options(ptr) != int(ctx.options):
        raise unsupported
    if setter(ptr, suites.encode()) != 1:
        raise ConfigError(f"TLS: Failed to configure ciphersuites: {suites}")


# ---- handshakes ----


class TlsHandshakeError(Exception):
    """A handshake failed; the message says why in an operator's words."""


_UNTRUSTED = {2, 18, 19, 20, 21}  # X509_V_ERR_*: no path to a trusted CA
_EXPIRED = 10
_NOT_YET_VALID = 9
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def describe_tls_error(exc: BaseException | None, peer: str) -> str:
    """Why a handshake with `peer` ("the master", "sentinel h:p", "client h:p") failed."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code, msg = exc.verify_code, exc.verify_message
        if code == _EXPIRED:
            return f"{peer}'s certificate has expired ({msg})"
        if code == _NOT_YET_VALID:
            return f"{peer}'s certificate is not yet valid ({msg})"
        if code in _NAME_MISMATCH:
            return (
                f"hostname mismatch: {peer}'s certificate does not name the host connected "
                f"to ({msg}); --tls-verify-hostname no turns the name check off"
            )
        if code in _UNTRUSTED:
            return (
                f"{peer}'s certificate is not signed by a trusted CA ({msg}); check "
                "--tls-ca-cert-file / --tls-ca-cert-dir"
            )
        return f"{peer}'s certificate failed verification ({msg})"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
        if reason == "WRONG_VERSION_NUMBER":
            return f"{peer} does not speak TLS on this port ({reason})"
        if "ALERT" in reason and any(w in reason for w in ("CERTIFICATE", "UNKNOWN_CA")):
            return (
                f"{peer} refused our certificate ({reason}); check --tls-client-cert-file / "
                "--tls-cert-file and the peer's CA"
            )
        if reason in ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "CERTIFICATE_VERIFY_FAILED"):
            return f"{peer} presented no valid client certificate ({reason})"
        return f"TLS error with {peer}: {reason}"
    if exc is None:
        return f"{peer} closed the connection during the TLS handshake"
    return f"TLS handshake with {peer} failed: {exc}"


async def connect(
    stream: trio.abc.Stream, ctx: ssl.SSLContext, host: str, peer: str, timeout: float
) -> trio.SSLStream[trio.abc.Stream]:
    """Client side: `stream` wrapped and handshaken (SNI and the name check use `host`)."""
    tls = trio.SSLStream(stream, ctx, server_hostname=host)
    await _handshake(tls, peer, timeout)
    return tls


async def accept(
    stream: trio.abc.Stream, ctx: ssl.SSLContext, peer: str, timeout: float = HANDSHAKE_TIMEOUT
) -> trio.SSLStream[trio.abc.Stream]:
    """Server side: `stream` wrapped and handshaken."""
    tls = trio.SSLStream(stream, ctx, server_side=True)
    await _handshake(tls, peer, timeout)
    return tls


async def _handshake(tls: trio.SSLStream[trio.abc.Stream], peer: str, timeout: float) -> None:
    with trio.move_on_after(timeout) as cs:
        try:
            await tls.do_handshake()
        except trio.BrokenResourceError as e:
            raise TlsHandshakeError(describe_tls_error(e.__cause__, peer)) from e
    if cs.cancelled_caught:
        raise TlsHandshakeError(f"TLS handshake with {peer} timed out after {timeout:g}s")


# ---- what others read ----


def redis_py_ssl_kwargs(s: TlsSettings) -> dict[str, Any]:
    """redis-py connection options for the master with the link's TLS settings: `{}` when the
    link to the master is plain. Use as `redis.Redis(host, port, **redis_py_ssl_kwargs(...))`.
    """
    if not s.replication:
        return {}
    kw: dict[str, Any] = {
        "ssl": True,
        "ssl_cert_reqs": "required",
        "ssl_check_hostname": s.verify_hostname,
        "ssl_min_version": parse_protocols(s.protocols)[0],
    }
    if s.ca_cert_file is not None:
        kw["ssl_ca_certs"] = str(s.ca_cert_file)
    if s.ca_cert_dir is not None:
        kw["ssl_ca_path"] = str(s.ca_cert_dir)
    identity = s.client_identity()
    if identity is not None:
        cert, key, password = identity
        kw["ssl_certfile"], kw["ssl_keyfile"] = str(cert), str(key)
        if password is not None:
            kw["ssl_password"] = password
    if s.ciphers:
        kw["ssl_ciphers"] = s.ciphers
    return kw


def config_params(s: TlsSettings, bound_tls_port: int | None, redacted: str) -> dict[str, str]:
    """CONFIG GET's `tls-*` parameters. The private keys' passphrases are secrets: a set one
    reads as `redacted` (Redis 7.0 would show it)."""

    def path(p: Path | None) -> str:
        return str(p) if p is not None else ""

    def yes(b: bool) -> str:
        return "yes" if b else "no"

    return {
        "tls-port": str(bound_tls_port or s.port),
        "tls-cert-file": path(s.cert_file),
        "tls-key-file": path(s.key_file),
        "tls-key-file-pass": redacted if s.key_file_pass else "",
        "tls-client-cert-file": path(s.client_cert_file),
        "tls-client-key-file": path(s.client_key_file),
        "tls-client-key-file-pass": redacted if s.client_key_file_pass else "",
        "tls-ca-cert-file": path(s.ca_cert_file),
        "tls-ca-cert-dir": path(s.ca_cert_dir),
        "tls-dh-params-file": path(s.dh_params_file),
        "tls-auth-clients": s.auth_clients,
        "tls-replication": yes(s.replication),
        "tls-protocols": s.protocols or "",
        "tls-ciphers": s.ciphers or "",
        "tls-ciphersuites": s.ciphersuites or "",
        "tls-prefer-server-ciphers": yes(s.prefer_server_ciphers),
        "tls-cluster": "no",
    }
