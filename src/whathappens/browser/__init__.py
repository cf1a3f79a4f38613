"""The browser phase (issue 10): the page loaded in headless Chromium, on the journey's clock.

    chromium.py   find Chromium, its launch arguments, a throwaway profile trusting one CA
    capture.py    drive one page load over CDP: Network.* events and a performance trace
    network.py    CDP Network.* events → one record per request (pure)
    netlog.py     Chromium's NetLog → the HTTP/2 stream of each request (pure)
    trace.py      trace events → rendering stages, marks, CLS, the filmstrip (pure)
    phase.py      ``browser_phase(journey, url, options)``: the spans on the journey
    guard.py      the vetting proxy and hardening switches a stranger's page runs behind
"""
