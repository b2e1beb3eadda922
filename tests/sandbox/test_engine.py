"""The Docker client recipe (``atomic.sandbox.engine``) against the real engine."""

from __future__ import annotations

from atomic.sandbox.engine import open_client


def test_calls_about_different_containers_share_one_kept_alive_connection() -> None:
    client = open_client(None, timeout=30)
    try:
        api = client.api
        assert api.trust_env is False  # no proxy or netrc lookups per call
        sockets = set()
        for i in range(8):
            # Each URL names another container (404s): the SDK's own adapter would open
            # a pool, and a connection, for each of them.
            try:
                api.inspect_container(f"atomic-no-such-container-{i}")
            except Exception as exc:  # noqa: BLE001 - docker.errors.NotFound
                assert getattr(exc, "status_code", None) == 404, exc
            pools = api._custom_adapter.pools
            [key] = pools.keys()
            pool = pools[key]
            idle = [c for c in list(pool.pool.queue) if c is not None]
            assert len(idle) == 1
            sockets.add(id(idle[0].sock))
        assert len(sockets) == 1  # the same socket every time: kept alive
        assert api.ping() is True
    finally:
        client.close()
