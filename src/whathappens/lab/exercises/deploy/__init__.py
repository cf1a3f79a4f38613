"""``whathappens lab deploy rolling | blue-green | rollback | reset``: a new version of the
site reaches the running lab under a paced load, measured (see ``rolling.py`` and
``bluegreen.py`` for how). What a deploy changed is kept in ``deploy.json`` (for this lab
only: an entry from before its latest ``lab up`` is ignored) so ``reset`` can undo it;
every process a deploy starts is recorded like a tier's, so ``lab down`` stops it too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from whathappens.errors import EXIT_LAB_FAILED
from whathappens.lab.exercises.deploy.bluegreen import (
    AFTER_SWITCH,
    bring_green,
    measure_switch,
    switch,
    switch_lines,
)
from whathappens.lab.exercises.deploy.measure import (
    LoadRun,
    failures,
    phase_lines,
    phases,
    timeline,
)
from whathappens.lab.exercises.deploy.rolling import all_up, roll_node, rolling
from whathappens.lab.exercises.deploy.runtime import (
    BASE_VERSION,
    DeployError,
    remove_green,
    runtime,
    servers,
    set_state,
)
from whathappens.lab.running import LabNotRunning
from whathappens.lab.running import open_lab as open_running_lab

if TYPE_CHECKING:
    from collections.abc import Callable

    from whathappens.lab.exercises import load
    from whathappens.lab.running import Lab
    from whathappens.lab.tier import LabContext

STATE_FILE = "deploy.json"
EXIT_INTERRUPTED = 130
ACTIONS = ("rolling", "blue-green", "rollback", "reset")


def open_lab(ctx: LabContext) -> Lab:
    """The running lab, if a deploy can run on it: the production profile."""
    try:
        return open_running_lab(
            ctx, profile="production",
            why="deploys need the production profile (HAProxy in front of two app nodes): "
                "whathappens lab up --profile production")
    except LabNotRunning as err:
        raise DeployError(str(err)) from None


def read_state(lab: Lab) -> dict[str, Any]:
    try:
        data = json.loads((lab.ctx.state / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("lab_id") != lab.lab_id():
        return {}
    return data


def write_state(lab: Lab, data: dict[str, Any]) -> None:
    path = lab.ctx.state / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**data, "lab_id": lab.lab_id()}, indent=2))
    tmp.replace(path)


def status_lines(ctx: LabContext) -> list[str]:
    """For ``lab status``: what a deploy changed and still holds."""
    from whathappens.lab.tier import LabContext as Context

    try:
        state = read_state(open_lab(Context(state=ctx.state)))
    except DeployError:
        return []
    lines = []
    changed = {n: v for n, v in state.get("versions", {}).items() if v != BASE_VERSION}
    if changed:
        lines.append("deploy in force: " + ", ".join(f"{n} runs {v}" for n, v in
                                                     sorted(changed.items()))
                     + " (undo: whathappens lab deploy reset)")
    green = state.get("green") or {}
    if green:
        lines.append(f"deploy in force: blue-green, green ({green.get('version')}) beside blue "
                     f"({green.get('old')}), {green.get('live')} live (switch: whathappens "
                     f"lab deploy rollback; remove green: whathappens lab deploy reset)")
    return lines


def main(ctx: LabContext, args: argparse.Namespace) -> int:
    try:
        lab = open_lab(ctx)
        facts = ACTION[str(args.how)](lab, args, print)
    except (DeployError, OSError) as err:
        print(f"whathappens lab deploy {args.how}: {err}", file=sys.stderr)
        return EXIT_LAB_FAILED
    except KeyboardInterrupt:
        print(f"whathappens lab deploy {args.how}: interrupted; 'whathappens lab deploy "
              f"reset' undoes what was done", file=sys.stderr)
        return EXIT_INTERRUPTED
    if getattr(args, "json", False):
        print(json.dumps(facts, indent=2, default=str))
    return 0 if facts.get("failed", 0) == 0 else 1


def do(ctx: LabContext, how: str, *, version: str = "v2",
       say: Callable[[str], None] = print) -> dict[str, Any]:
    """One deploy action, its facts (what ``main`` prints; for the tests)."""
    args = argparse.Namespace(how=how, version=version, json=False)
    return ACTION[how](open_lab(ctx), args, say)


def load_report(result: load.LoadResult, run: LoadRun, say: Callable[[str], None]) -> None:
    rows = phases(result, run.marks)
    say(f"what the load saw ({len(result.samples)} GETs through the edge, "
        f"{run.rate:g}/s, {run.concurrency} at a time; a request counts in the phase in "
        f"which it started; p50/p95 of the answered ones, client-side, monotonic clock):")
    for line in phase_lines(rows):
        say(line)
    say("  versions answered, per 2 s (X-Site-Version; # = 2 requests):")
    for line in timeline(result):
        say(line)
    for line in failures(result):
        say(line)


def do_rolling(lab: Lab, args: argparse.Namespace, say: Callable[[str], None]
               ) -> dict[str, Any]:
    state = read_state(lab)
    if state.get("green"):
        raise DeployError("a blue-green deploy is in place: whathappens lab deploy reset")
    say(f"rolling deploy of {args.version}: node by node, drain → wait → switch → "
        f"health-check → ready, under a paced load")
    run = LoadRun(lab)
    run.start()
    try:
        steps = rolling(lab, args.version, say, run)
    finally:
        result = run.finish()
        write_state(lab, {**state, "versions": {n: args.version for n in lab.app_nodes()}})
    load_report(result, run, say)
    say(f"  → {len(result.failed)} failed of {len(result.samples)}; drain waits: " +
        ", ".join(f"{s.node} {s.drain_wait_s:.2f} s" for s in steps))
    return {"action": "rolling", "version": args.version, "steps": [s.to_dict() for s in steps],
            "phases": [p.to_dict() for p in phases(result, run.marks)],
            "summary": result.summary(), "failed": len(result.failed)}


def do_blue_green(lab: Lab, args: argparse.Namespace, say: Callable[[str], None]
                  ) -> dict[str, Any]:
    state = read_state(lab)
    if state.get("green"):
        raise DeployError("green is already in place (lab deploy rollback to switch back, "
                          "lab deploy reset to remove it)")
    all_up(lab)
    old = state.get("versions", {}).get(lab.app_nodes()[0], BASE_VERSION)
    say(f"blue-green deploy of {args.version}: green beside blue ({old}), then one switch")
    run = LoadRun(lab)
    run.start()
    sw = None
    try:
        run.mark("blue live")
        time.sleep(1.0)
        try:
            green = bring_green(lab, args.version, say, run)
        except DeployError:
            for node in lab.app_nodes():      # nothing of green stays behind a failure
                remove_green(lab, node)
            raise
        write_state(lab, {**state, "green": {"version": args.version, "old": old,
                                             "live": "blue"}})
        time.sleep(1.0)
        sw = switch(lab, run, to_green=True)
        write_state(lab, {**state, "green": {"version": args.version, "old": old,
                                             "live": "green"}})
        time.sleep(AFTER_SWITCH)
    finally:
        result = run.finish(tail=0.0)
    load_report(result, run, say)
    if sw is None:
        raise DeployError("the switch did not happen")
    measure_switch(sw, result, args.version, old)
    for line in switch_lines(sw, args.version, old):
        say(line)
    say("  undo: whathappens lab deploy rollback (instant), or lab deploy reset")
    return {"action": "blue-green", "version": args.version, "green": green,
            "switch": sw.to_dict(), "phases": [p.to_dict() for p in phases(result, run.marks)],
            "summary": result.summary(), "failed": len(result.failed)}


def do_rollback(lab: Lab, args: argparse.Namespace, say: Callable[[str], None]
                ) -> dict[str, Any]:
    state = read_state(lab)
    green = state.get("green") or {}
    if green.get("live") not in ("green", "blue"):
        raise DeployError("no blue-green deploy to roll back (lab deploy blue-green first)")
    to_green = green["live"] == "blue"      # a second rollback rolls forward again
    new, old = ((green["version"], green["old"]) if to_green
                else (green["old"], green["version"]))
    say(f"rollback: switch {'blue → green' if to_green else 'green → blue'} ({old} → {new}) "
        f"under a paced load")
    run = LoadRun(lab)
    run.start()
    try:
        run.mark(f"{'blue' if to_green else 'green'} live")
        time.sleep(1.5)
        sw = switch(lab, run, to_green=to_green)
        write_state(lab, {**state, "green": {**green,
                                             "live": "green" if to_green else "blue"}})
        time.sleep(AFTER_SWITCH)
    finally:
        result = run.finish(tail=0.0)
    load_report(result, run, say)
    measure_switch(sw, result, new, old)
    for line in switch_lines(sw, new, old):
        say(line)
    return {"action": "rollback", "switch": sw.to_dict(), "summary": result.summary(),
            "phases": [p.to_dict() for p in phases(result, run.marks)],
            "failed": len(result.failed)}


def do_reset(lab: Lab, args: argparse.Namespace, say: Callable[[str], None]
             ) -> dict[str, Any]:
    """Blue ready and green gone; every gunicorn a deploy restarted back at v1."""
    state = read_state(lab)
    done: list[str] = []
    nodes = lab.app_nodes()
    names = servers(lab)
    runtime(lab, [set_state(n, "ready") for n in nodes if n in names])
    for node in nodes:
        done += remove_green(lab, node)
    for node, was in sorted(state.get("versions", {}).items()):
        if was != BASE_VERSION and node in nodes:
            roll_node(lab, node, BASE_VERSION, say)
            done.append(f"{node} back to {BASE_VERSION}")
    write_state(lab, {})
    say("deploy reset: " + ("; ".join(done) if done else "nothing to undo"))
    return {"action": "reset", "done": done}


ACTION: dict[str, Callable[[Lab, argparse.Namespace, Callable[[str], None]], dict[str, Any]]]
ACTION = {"rolling": do_rolling, "blue-green": do_blue_green, "rollback": do_rollback,
          "reset": do_reset}
