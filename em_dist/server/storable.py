"""Refuse, before any database sees it, what one of our databases could not store.

PostgreSQL refuses NUL in text, lone surrogates and NaN in JSON, and answered those with
a 500 while SQLite took them. Request bodies inherit :class:`StorableModel`, whose check
(:func:`em_dist.limits.json_problem`) turns such values into a 400 naming the field;
:func:`check_request_text` does the same for path and query parameters of every route.
Metric lines are checked line by line in :mod:`em_dist.server.metric_store`.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, model_validator
from pydantic_core import PydanticCustomError

from em_dist.limits import json_problem, text_problem

UNSTORABLE = "unstorable"
"""The pydantic error type of a value no database may store (answered as HTTP 400)."""


class StorableModel(BaseModel):
    """A request body whose every string and number can be stored by SQLite and PostgreSQL alike."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        problem = json_problem(data)
        if problem:
            raise PydanticCustomError(UNSTORABLE, "request body: {problem}", {"problem": problem})
        return data


OWN_CHECKS = frozenset({"filter"})
"""Query parameters whose parser checks them itself and names the position of a problem
(the run filter: :func:`em_dist.server.search.parse`)."""


def check_request_text(request: Request) -> None:
    """400 when a path or query parameter holds NUL, a lone surrogate or over 1,000 characters
    (except those in :data:`OWN_CHECKS`)."""
    for where, params in (("path", request.path_params), ("query", request.query_params)):
        for name, value in params.items():
            if isinstance(value, str) and not (where == "query" and name in OWN_CHECKS):
                problem = text_problem(value, max_chars=1000)
                if problem:
                    raise HTTPException(400, f"{where} parameter {name!r} {problem}")
