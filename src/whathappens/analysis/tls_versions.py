"""TLS 1.2 against TLS 1.3: the arithmetic over measured handshakes, no I/O.

The probe (``whathappens.probes.tls_compare``) makes fresh handshakes and records each one's
messages with their times; this module turns those into what is reported:

- ``flights``: consecutive messages in one direction, grouped;
- ``count_round_trips``: the flights the client had to wait for (2 for a full TLS 1.2
  handshake, 1 for TLS 1.3, one more after a HelloRetryRequest);
- ``waits``: for each of those, the ms the client waited;
- ``median_sample``: of several rounds, the sample with the median handshake time;
- ``model``: the modelled saving, Δ round trips × the kernel's RTT, beside the measured
  difference, and what is left beyond the round trips (cryptography and scheduling).

A message is a dict with ``direction`` ("sent" or "received"), ``type`` and ``t_ms``, as
``net/tls.py`` records them; a version's result is the probe's dict (``outcome``,
``handshake_ms``, ``round_trips``, ``kernel_rtt_ms``, …).
"""

from __future__ import annotations

from typing import Any

MODEL_NOTE = ("modelled, not measured: the difference in round trips the client waited for, "
              "times the kernel's RTT. Whatever the measured difference has beyond it is "
              "work, not waiting: cryptography on both sides and scheduling")


def flights(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive messages in one direction, grouped: who sent the flight, what, when."""
    out: list[dict[str, Any]] = []
    for m in messages:
        side = "client" if m.get("direction") == "sent" else "server"
        if out and out[-1]["from"] == side:
            out[-1]["messages"].append(str(m.get("type")))
        else:
            out.append({"from": side, "messages": [str(m.get("type"))],
                        "t_ms": m.get("t_ms")})
    return out


def waits(messages: list[dict[str, Any]]) -> list[float]:
    """For each round trip, ms from the client's last message to the server's next flight.

    Each wait is the network round trip plus the server's work on our flight plus our event
    loop's wake-up: what the client really waited, where the kernel's RTT is the network alone.
    """
    out: list[float] = []
    last_sent: float | None = None
    for m in messages:
        t = m.get("t_ms")
        if t is None:
            continue
        if m.get("direction") == "sent":
            last_sent = float(t)
        elif last_sent is not None:
            out.append(round(float(t) - last_sent, 3))
            last_sent = None
    return out


def count_round_trips(messages: list[dict[str, Any]]) -> int:
    """Flights the client had to wait for: each server flight that follows a client flight.

    A full TLS 1.2 handshake: ClientHello ⇢ ServerHello…ServerHelloDone, then ClientKeyExchange,
    ChangeCipherSpec, Finished ⇢ ChangeCipherSpec, Finished: 2. TLS 1.3: ClientHello ⇢
    ServerHello…Finished, then our Finished goes out without waiting: 1. A HelloRetryRequest
    adds one.
    """
    count = 0
    saw_client = False
    for f in flights(messages):
        if f["from"] == "client":
            saw_client = True
        elif saw_client:
            count += 1
            saw_client = False
    return count


def median_sample(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample with the median handshake time, carrying every sample's times.

    Of an even number of measured samples, the lower middle one: a real sample, never an
    average of two. When none was measured, the last sample (it says why).
    """
    measured = sorted((s for s in samples if s["outcome"] == "measured"),
                      key=lambda s: float(s["handshake_ms"]))
    chosen = dict(measured[(len(measured) - 1) // 2] if measured else samples[-1])
    chosen["samples"] = [{"handshake_ms": s["handshake_ms"],
                          "tcp_connect_ms": s["tcp_connect_ms"],
                          "round_trips": s["round_trips"], "outcome": s["outcome"],
                          "started_ms": s["started_ms"], "ended_ms": s["ended_ms"]}
                         for s in samples]
    chosen["median_of"] = len(measured)
    return chosen


def model(v12: dict[str, Any], v13: dict[str, Any]) -> dict[str, Any]:
    """What the difference in round trips alone would cost, beside the measured difference."""
    if v12["outcome"] != "measured" or v13["outcome"] != "measured":
        return {"modelled": True, "available": False, "note": MODEL_NOTE,
                "why_not": "both versions must be measured to compare them"}
    rtts = [float(v["kernel_rtt_ms"]) for v in (v12, v13) if v["kernel_rtt_ms"] is not None]
    rtt = round(sum(rtts) / len(rtts), 3) if rtts else None
    d_rt = int(v12["round_trips"]) - int(v13["round_trips"])
    measured = round(float(v12["handshake_ms"]) - float(v13["handshake_ms"]), 3)
    expected = None if rtt is None else round(d_rt * rtt, 3)
    return {"modelled": True, "available": True, "note": MODEL_NOTE,
            "round_trip_difference": d_rt, "rtt_ms": rtt,
            "rtt_source": "the kernel's smoothed RTT (TCP_INFO) right after each TCP connect, "
                          "mean of the two connections",
            "expected_difference_ms": expected, "measured_difference_ms": measured,
            "beyond_round_trips_ms": None if expected is None else round(measured - expected, 3)}
