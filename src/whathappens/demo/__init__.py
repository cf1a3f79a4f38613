"""The demo internet: real local servers on 127.0.0.0/8 so a journey can run offline.

A root name server, a TLD server, authoritative servers, an HTTPS web server for
www.example.com with its own local CA, and TLS servers with deliberately broken
certificates. They all run in one separate process (``python -m whathappens.demo.serve``)
so their work and their injected delays never run on the tracer's clock; the tracer and the
tests drive that process through :class:`whathappens.demo.internet.DemoInternet`.

    topology.py       who listens where, with which delay (the one table everything reads)
    ca.py             the local PKI: root → intermediate → leaf, and the broken certificates
    zones/            master files for ., com., net., org., example.com. and friends
    authoritative.py  a small authoritative DNS server (UDP + TCP) on dnspython
    web.py            the site (ASGI) and its HTTPS/HTTP servers on hypercorn
    serve.py          starts everything, checks it answers, prints the ready line
    internet.py       the client side: spawn, wait for ready, stop
"""
