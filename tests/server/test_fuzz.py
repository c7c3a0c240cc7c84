"""Property-based fuzzing of the whole REST API from its OpenAPI schema (schemathesis).

Every operation of ``/api/v1/openapi.json`` is called with generated path, query and
body values, as a signed-in user, on SQLite and PostgreSQL: no answer may be a 5xx or
break the schema. Bounded and deterministic: a fixed number of examples per operation,
derandomized (the same inputs on every run), no example database.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.checks import not_a_server_error

EXAMPLES_PER_OPERATION = 25


def test_no_server_errors_and_answers_match_the_schema(server) -> None:
    _, key = server.add_user()
    schema = schemathesis.openapi.from_url(f"{server.url}/api/v1/openapi.json")
    schema.config.update(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        def call(case) -> None:  # type: ignore[no-untyped-def]
            response = case.call(timeout=30)
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

        call()
