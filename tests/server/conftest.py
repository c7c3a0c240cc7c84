from tests.server.harness import fresh_server, pg_cluster, server  # noqa: F401  (fixtures)
from tests.server.s3 import s3_server  # noqa: F401  (fixture)
