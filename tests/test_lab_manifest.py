"""lab.json, read and written in one place, and the lab handle built from it: no lab runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from whathappens.lab import manifest as lab_json
from whathappens.lab.exercises.https import server_timing
from whathappens.lab.manifest import Manifest, TierEntry
from whathappens.lab.running import LabNotRunning, open_lab
from whathappens.lab.tier import LabContext
from whathappens.lab.tiers import build_all
from whathappens.lab.topology import production


def test_what_lab_up_writes_reads_back_the_same(tmp_path: Path) -> None:
    topo = production()
    written = Manifest("production", "leastconn", 0, None,
                       tiers=[TierEntry.from_json(t.describe()) for t in build_all(topo)])
    lab_json.write(tmp_path, written)
    raw = json.loads((tmp_path / "lab.json").read_text())
    assert raw["algorithm"] == "leastconn"
    assert {t["name"] for t in raw["tiers"]} == {s.name for s in topo.tiers}
    edge = next(t for t in raw["tiers"] if t["name"] == "edge")
    assert edge["kind"] == "nginx-edge"
    assert edge["http_port"] == topo.spec("edge").options["http_port"]
    read = lab_json.read(tmp_path)
    assert read == written
    assert read is not None
    assert read.to_json() == raw


def test_an_experiments_override_is_kept_with_every_other_fact(tmp_path: Path) -> None:
    entry = TierEntry.from_json({"name": "app-2-gunicorn", "host": "app-2", "role": "app",
                                 "address": "127.0.92.2", "port": 8000, "workers": 2})
    entry.env_overrides = {"WHATHAPPENS_THINK_MS": "100"}
    lab_json.write(tmp_path, Manifest("production", tiers=[entry]))
    [again] = lab_json.read(tmp_path).tiers  # type: ignore[union-attr]
    assert again.env_overrides == {"WHATHAPPENS_THINK_MS": "100"}
    assert again.facts == {"workers": 2}


@pytest.mark.parametrize("text", ["", "{", "[]", '{"tiers": []}', '{"profile": "x", '
                                  '"tiers": [{"host": "nameless"}]}'])
def test_what_is_not_a_lab_json_is_no_lab(tmp_path: Path, text: str) -> None:
    (tmp_path / "lab.json").write_text(text)
    assert lab_json.read(tmp_path) is None
    with pytest.raises(LabNotRunning, match="no lab in"):
        open_lab(LabContext(state=tmp_path))


def test_the_handle_uses_the_ports_the_lab_recorded(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A lab brought up as root listens on 443, whoever reads its lab.json later."""
    (tmp_path / "lab.json").write_text(json.dumps({"profile": "single", "tiers": [
        {"name": "nginx", "host": "server", "address": "127.0.96.1", "port": 443}]}))
    monkeypatch.setattr("os.geteuid", lambda: 1000)     # this reader: not root
    lab = open_lab(LabContext(state=tmp_path))
    assert lab.front == ("127.0.96.1", 443)
    assert [t.name for t in lab.tiers()] == ["nginx"]   # only what the lab started
    with pytest.raises(LabNotRunning, match="drills need"):
        open_lab(LabContext(state=tmp_path), profile="production", why="drills need it")


def test_server_timing_entries_with_a_duration() -> None:
    header = 'app;dur=12.5, db;dur=3;desc="2 queries", cdn-cache;desc=HIT, edge;dur=x, ;dur=1'
    assert server_timing(header) == {"app": 12.5, "db": 3.0}
    assert server_timing("") == {}
