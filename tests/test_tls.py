"""TLS three ways (issue 15): to the master, for clients on `--tls-port`, to downstream
replicas, and HTTPS for the metrics, with certificates made here (`trustme`).

Every server is a real redis-server 7.0 (Debian's, built with TLS) listening on a TLS port
only; the proofs are what they report (INFO, their logs, DEBUG DIGEST) and the relay's log.
"""

from __future__ import annotations

import datetime
import signal
import socket
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from replproxy.config import ConfigError, TlsSettings, parse_protocols
from replproxy.tls import (
    TlsContexts,
    client_context,
    redis_py_ssl_kwargs,
    server_context,
)
from tests.conftest import kind_by_name
from tests.harness.relay import RelayProcess, upstream_url
from tests.harness.servers import RedisServer, ServerKind, start_server, wait_for
from tests.harness.tlsutil import Certs, start_tls_relay, start_tls_server
from tests.harness.workload import Workload
from tests.test_downstream_integration import (
    DBS,
    PARTIAL_ACCEPTED,
    assert_same_digests,
    stats,
)

pytestmark = pytest.mark.timeout(240)

REDIS7 = kind_by_name("redis7")
needs_redis7 = pytest.mark.skipif(REDIS7 is None, reason="redis7 (Debian's redis-server) absent")


@pytest.fixture
def certs() -> Certs:
    return Certs(Path(tempfile.mkdtemp(prefix="replproxy-certs-")))


@pytest.fixture
def servers() -> Iterator[list[RedisServer]]:
    started: list[RedisServer] = []
    try:
        yield started
    finally:
        for s in started:
            s.stop()


def _kind() -> ServerKind:
    assert REDIS7 is not None
    return REDIS7


# ---- the settings and contexts (no servers) ----


def test_protocols_follow_redis_conf() -> None:
    assert parse_protocols(None) == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
    assert parse_protocols("tlsv1.3") == (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
    assert parse_protocols("TLSv1.1 TLSv1.2") == (ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_2)
    for bad in ("TLSv1.4", "SSLv3", "TLSv1 TLSv1.3"):
        with pytest.raises(ConfigError):
            parse_protocols(bad)


def test_contexts_follow_the_settings(certs: Certs) -> None:
    cert, key = certs.issue("relay")
    s = TlsSettings(
        port=7000,
        cert_file=cert,
        key_file=key,
        ca_cert_file=certs.ca_file,
        protocols="TLSv1.3",
        ciphersuites="TLS_CHACHA20_POLY1305_SHA256",
    )
    srv = server_context(s)
    assert srv.verify_mode is ssl.CERT_REQUIRED  # tls-auth-clients yes, Redis's default
    assert srv.minimum_version is ssl.TLSVersion.TLSv1_3
    # The TLS 1.3 suites Python's ssl cannot set: only the chosen one is left.
    tls13 = [c["name"] for c in srv.get_ciphers() if c["protocol"] == "TLSv1.3"]
    assert tls13 == ["TLS_CHACHA20_POLY1305_SHA256"]
    optional = server_context(
        TlsSettings(
            port=7000,
            cert_file=cert,
            key_file=key,
            ca_cert_file=certs.ca_file,
            auth_clients="optional",
        )
    )
    assert optional.verify_mode is ssl.CERT_OPTIONAL
    cli = client_context(s)
    assert cli.check_hostname and cli.verify_mode is ssl.CERT_REQUIRED
    assert not client_context(TlsSettings(verify_hostname=False)).check_hostname
    with pytest.raises(ConfigError, match="Failed to configure ciphersuites"):
        server_context(
            TlsSettings(
                port=1, cert_file=cert, key_file=key, auth_clients="no", ciphersuites="NOT_A_SUITE"
            )
        )
    with pytest.raises(ConfigError, match="Failed to load certificate"):
        server_context(TlsSettings(port=1, cert_file=key, key_file=key, auth_clients="no"))


def test_a_reload_that_fails_keeps_the_contexts_in_use(certs: Certs) -> None:
    cert, key = certs.issue("relay")
    contexts = TlsContexts(
        TlsSettings(port=7000, cert_file=cert, key_file=key, ca_cert_file=certs.ca_file),
        client=False,
    )
    before = contexts.server
    cert.write_text("not a certificate")
    assert not contexts.reload()
    assert contexts.server is before
    certs.issue("relay")
    assert contexts.reload()
    assert contexts.server is not before and contexts.reloads == 1


def test_redis_py_kwargs_are_empty_for_a_plain_link() -> None:
    assert redis_py_ssl_kwargs(TlsSettings(port=7000)) == {}


@needs_redis7
def test_redis_py_kwargs_reach_a_tls_master(certs: Certs, servers: list[RedisServer]) -> None:
    master = start_tls_server(_kind(), certs, "master")
    servers.append(master)
    cert, key = certs.issue("relay")
    kw = redis_py_ssl_kwargs(
        TlsSettings(replication=True, cert_file=cert, key_file=key, ca_cert_file=certs.ca_file)
    )
    with redis.Redis("127.0.0.1", master.port, **kw) as c:
        assert c.ping()
    # The name check is on: the master's certificate names 127.0.0.1, not localhost.
    with (
        redis.Redis("localhost", master.port, **kw) as c,
        pytest.raises(redis.ConnectionError, match=r"(?i)hostname|mismatch"),
    ):
        c.ping()


# ---- with real servers ----


@pytest.mark.slow
@needs_redis7
def test_tls_master_relay_tls_port_and_tls_downstream_replica(
    certs: Certs, servers: list[RedisServer], relays: list[RelayProcess]
) -> None:
    """TLS-only everywhere: master -> relay (rediss://, client certificate) -> replica
    (tls-replication yes on the relay's TLS port); a cut link resyncs partially."""
    kind = _kind()
    master = start_tls_server(kind, certs, "master")
    servers.append(master)
    w = Workload(master, seed=151, dbs=DBS)
    w.run(300)
    relay = start_tls_relay(f"rediss://{master.host}:{master.port}", certs)
    relays.append(relay)
    info = relay.info("replication")
    assert info["master_link_status"] == "up"
    # The master knows the relay by its TLS port (tls-replication's REPLCONF listening-port).
    assert master.info("replication")["slave0"]["port"] == relay.port
    with relay.client() as c:
        assert c.config_get("port") == {"port": "0"}  # --port 0: no plain port
        assert c.config_get("tls-port") == {"tls-port": str(relay.port)}
        assert int(c.info("server")["tcp_port"]) == relay.port

    replica = start_tls_server(
        kind,
        certs,
        "replica",
        extra={"tls-replication": "yes", "replicaof": f"127.0.0.1 {relay.port}"},
    )
    servers.append(replica)
    w.run(500)
    assert_same_digests(master, relay, [replica])
    full, partial, _ = stats(relay)
    assert full == 1

    # Cut the replica's link (from its side): it comes back with a partial resync.
    with replica.client() as c:
        assert c.execute_command("CLIENT", "KILL", "TYPE", "master") == 1
    w.run(300)
    wait_for(lambda: stats(relay)[1] == partial + 1, 60, what="a partial resync served")
    assert PARTIAL_ACCEPTED in replica.log()
    assert_same_digests(master, relay, [replica])
    assert stats(relay)[0] == 1  # still one full sync served
    assert stats(master)[0] == 1  # and the master did one, for the relay
    assert "Traceback" not in relay.log()


@pytest.mark.slow
@needs_redis7
def test_wrong_ca_expired_certificate_and_hostname_mismatch_are_logged_and_retried(
    certs: Certs, servers: list[RedisServer], relays: list[RelayProcess]
) -> None:
    kind = _kind()
    rogue = Certs(certs.dir)  # another CA, in the same directory
    # The master asks no client certificate; the test talks to it without verifying it.
    unverified: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "none", "ssl_check_hostname": False}
    master = start_tls_server(kind, rogue, "master", auth_clients="no", client_kwargs=unverified)
    servers.append(master)
    with master.client() as c:
        c.set("k", "v")
    relay = start_tls_relay(
        f"rediss://{master.host}:{master.port}",
        certs,
        "--reconnect-backoff-max",
        "0.5",
        plain=True,
        wait_ready=False,
    )
    relays.append(relay)

    def failed_with(reason: str) -> None:
        start = relay.log().count("retrying in")
        wait_for(lambda: reason in relay.log(), 60, what=f"the log to say {reason!r}")
        # ... and it retries, with the relay alive and saying so.
        wait_for(lambda: relay.log().count("retrying in") >= start + 2, 60, what="retries")
        assert relay.alive()
        assert relay.http("/livez")[0] == 200
        assert relay.http("/readyz")[0] == 503

    def serve(cert: tuple[Path, Path]) -> None:
        with master.client() as c:  # one CONFIG SET: the certificate and its key together
            c.execute_command(
                "CONFIG", "SET", "tls-cert-file", str(cert[0]), "tls-key-file", str(cert[1])
            )

    failed_with("the master's certificate is not signed by a trusted CA")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    serve(certs.issue("expired", not_after=past))
    failed_with("the master's certificate has expired")
    serve(certs.issue("elsewhere", "redis.example.com"))
    failed_with("hostname mismatch: the master's certificate does not name the host")
    assert "--tls-verify-hostname no turns the name check off" in relay.log()

    serve(certs.issue("master-good"))
    wait_for(lambda: relay.http("/readyz")[0] == 200, 60, what="the link up over TLS")
    with relay.client() as c:
        assert c.get("k") == b"v"
    assert "Traceback" not in relay.log()


@pytest.mark.slow
@needs_redis7
def test_client_certificates_sighup_reload_and_https_metrics(
    certs: Certs, servers: list[RedisServer], relays: list[RelayProcess]
) -> None:
    """Plain and TLS ports side by side; `--tls-auth-clients yes` refuses a client without a
    certificate; SIGHUP swaps the certificate for new connections (a bad file keeps the old
    one); `--metrics-tls yes` serves the probes over HTTPS."""
    master = start_server(_kind())
    servers.append(master)
    with master.client() as c:
        c.set("k", "v")
    relay = start_tls_relay(
        upstream_url(master),
        certs,
        "--metrics-tls",
        "yes",
        plain=True,
        http_context=certs.http_context(),
    )
    relays.append(relay)
    with redis.Redis("127.0.0.1", relay.plain_port) as plain, relay.client() as secure:
        assert plain.get("k") == secure.get("k") == b"v"
    # TLS without a client certificate: refused.
    with (
        redis.Redis("127.0.0.1", relay.port, ssl=True, ssl_ca_certs=str(certs.ca_file)) as c,
        pytest.raises(redis.ConnectionError),
    ):
        c.get("k")
    wait_for(lambda: "TLS connection from" in relay.log(), 10, what="the refusal logged")

    assert relay.http("/livez") == (200, "ok\n")
    assert relay.http("/metrics")[0] == 200
    with pytest.raises(OSError):  # plain HTTP on the HTTPS port gets no answer
        RelayProcess(relay.port, relay.metrics_port, relay.dir, relay.proc, relay.logfile).http(
            "/livez"
        )

    def served_cert() -> bytes:
        ctx = ssl.create_default_context(cafile=str(certs.ca_file))
        ctx.load_cert_chain(certs.dir / "test-client.crt", certs.dir / "test-client.key")
        with (
            socket.create_connection(("127.0.0.1", relay.port)) as s,
            ctx.wrap_socket(s, server_hostname="127.0.0.1") as t,
        ):
            der = t.getpeercert(binary_form=True)
            assert der is not None
            return der

    cert_file = certs.dir / f"relay-{relay.port}.crt"
    first = served_cert()
    kept = relay.client()
    kept.ping()
    certs.issue(f"relay-{relay.port}")  # renewed in place, as cert-manager does
    assert served_cert() == first  # read at start-up, not per connection
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "TLS certificates reloaded" in relay.log(), 10, what="the reload")
    second = served_cert()
    assert second != first
    assert ssl.DER_cert_to_PEM_cert(second).strip() in cert_file.read_text()
    assert kept.ping()  # connections made before keep going

    cert_file.write_text("garbage")
    relay.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: "TLS reload failed, the certificates in use stay" in relay.log(),
        10,
        what="the failed reload",
    )
    assert served_cert() == second
    assert relay.alive() and relay.http("/livez")[0] == 200
    kept.close()
