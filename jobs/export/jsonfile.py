"""``disclosure_report.json``: the rules applied and the audit's verdict, as JSON text."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from zicht.jobs.export.writers import utf8_text


def render_json(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, indent=2, default=str).encode("utf-8")


class JsonWriter:
    format = "json"

    def text(self, data: bytes) -> Iterator[str]:
        return utf8_text(data)


WRITER = JsonWriter()
