"""schemathesis hooks for test_contract_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

`positive_data_acceptance` sends requests that match the OpenAPI schema and expects them accepted. A few rules the
services enforce cannot be written in JSON Schema; a 422 caused only by one of them is the documented answer, not a
finding. Each rule is listed here with where it is enforced; any other rejection of schema-valid data still fails.
"""

from typing import Any

import schemathesis

# (error code, field message) pairs of 422s that name a rule JSON Schema cannot express.
NOT_EXPRESSIBLE = {
    # shared.events.Timestamp: instants from 1990-01-01 to one day ahead of the server's clock (a moving bound,
    # and JSON Schema's `format: date-time` has no minimum or maximum).
    ("validation_error", "Value error, must not be before 1990-01-01"),
    ("validation_error", "Value error, must not be more than one day in the future"),
    # recognition's since/until windows: a relation between two parameters.
    ("invalid", "since must not be after until"),
}


def _only_inexpressible(response: Any) -> bool:
    if response.status_code != 422:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    fields = body.get("fields") or []
    return bool(fields) and all((body.get("error"), f.get("message")) in NOT_EXPRESSIBLE for f in fields)


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    kind = type(failure).__name__
    if kind == "RejectedPositiveData" and _only_inexpressible(response):
        return False
    return True
