from tests.server.harness import fresh_server, pg_cluster, server  # noqa: F401  (fixtures)
