from tests.server.harness import pg_cluster, server  # noqa: F401  (fixtures)
