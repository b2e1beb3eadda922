"""The end-to-end benchmark harness behind ``benchmarks/run``.

``http``     a minimal HTTP/1.1 client on Trio (keep-alive, one request in flight per
             connection): what ``benchmarks/load.py`` and the figures use to talk to a server.
``server``   starts and stops ``atomic serve`` and the baseline app, reads their RSS.
``loadgen``  runs ``wrk`` (or ``benchmarks/load.py`` when wrk is missing) and ``openloop.c`` (fixed rate)
             as subprocesses.
``figures``  one function per figure of the table.
``report``   medians, spreads, the table and its JSON.
"""
