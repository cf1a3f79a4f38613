"""gunicorn's access log as valid JSON lines: every value escaped as a JSON string.

gunicorn's own atoms escape ``"`` but not ``\\`` or control characters, so a request with a
backslash in its User-Agent would break the line. This logger class
(``--logger-class whathappens.lab.site.accesslog.JsonAccessLogger``) escapes each string
atom the way ``json.dumps`` does; the format (``tiers/gunicorn.py``) puts the quotes.
"""

from __future__ import annotations

import importlib
import json
from typing import Any


class JsonAtoms(dict[str, Any]):
    """gunicorn's SafeAtoms, escaping for JSON: headers case-insensitive, "-" when absent."""

    def __init__(self, atoms: dict[str, Any]) -> None:
        super().__init__()
        for key, value in atoms.items():
            self[key] = json.dumps(value)[1:-1] if isinstance(value, str) else value

    def __getitem__(self, key: str) -> Any:
        if key.startswith("{"):
            key = key.lower()
        return super().__getitem__(key) if key in self else "-"


_glogging: Any = importlib.import_module("gunicorn.glogging")   # gunicorn ships no types
JsonAccessLogger = type("JsonAccessLogger", (_glogging.Logger,),
                        {"atoms_wrapper_class": JsonAtoms, "__module__": __name__})
