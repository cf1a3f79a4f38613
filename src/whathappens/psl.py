"""The public suffix list, offline: which part of a name is a registry's, which is yours.

The list itself is the snapshot that the ``tldextract`` package ships (``.tld_set_snapshot``,
Mozilla's public_suffix_list.dat, MPL-2.0). We read that file directly and apply the list's
published algorithm (https://publicsuffix.org/list/, "Formal algorithm") instead of importing
tldextract, whose import pulls in an HTTP client and costs ~130 ms per run for a lookup that
takes a few microseconds. Private-section rules (github.io, blogspot.com) count, as they do
for browsers' notion of a site.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path


def snapshot_path() -> Path:
    """Where tldextract keeps its snapshot, found without importing the package."""
    spec = importlib.util.find_spec("tldextract")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the tldextract package (its public suffix list) is missing")
    return Path(next(iter(spec.submodule_search_locations))) / ".tld_set_snapshot"


@cache
def _rules() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(normal rules, wildcard rules without their "*.", exception rules without "!")."""
    text = snapshot_path().read_text(encoding="utf-8")
    normal: set[str] = set()
    wild: set[str] = set()
    exception: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        rule = line.split()[0].lower()
        if rule.startswith("!"):
            exception.add(rule[1:])
        elif rule.startswith("*."):
            wild.add(rule[2:])
        else:
            normal.add(rule)
    return frozenset(normal), frozenset(wild), frozenset(exception)


def _unicode(label: str) -> str:
    """The list spells internationalized rules in Unicode; names arrive as A-labels."""
    if label.startswith("xn--"):
        try:
            return label.encode("ascii").decode("idna")
        except UnicodeError:
            return label
    return label


def split(host: str) -> tuple[str | None, str | None]:
    """(public suffix, registrable domain) of an ASCII domain name, as the host is spelled."""
    name = host.lower().removesuffix(".")
    if not name:
        return None, None
    labels = name.split(".")
    keys = [_unicode(label) for label in labels]
    normal, wild, exception = _rules()
    suffix_len = 1  # the implicit "*" rule: the last label is a public suffix
    for i in range(len(keys)):
        candidate = ".".join(keys[i:])
        parent = ".".join(keys[i + 1:])
        n = len(keys) - i
        if candidate in exception:
            # An exception rule wins over everything: its parent is the suffix.
            suffix_len = n - 1
            break
        if candidate in normal or (i + 1 < len(keys) and parent in wild):
            suffix_len = max(suffix_len, n)
    suffix = ".".join(labels[-suffix_len:])
    registrable = ".".join(labels[-suffix_len - 1:]) if len(labels) > suffix_len else None
    return suffix, registrable
