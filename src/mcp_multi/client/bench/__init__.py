"""The load mode, ``mcp-client bench``: drive MCP servers with calls and measure them.

Theory of operation. A run is a :class:`~.plan.Plan` (what to call, how hard, for how long)
applied to each target in turn, never to two at once (they would share the generator's CPU).
For each target the command line (:mod:`.cli`) first opens one session with the real client
and checks the call makes sense (the tool exists, the arguments pass its ``inputSchema``);
then the plan is split over ``--processes`` (:mod:`.workers`), and in each process the
engine (:mod:`.engine`) opens its share of the ``--sessions`` with
:class:`~mcp_multi.client.connection.MCPConnection` (so handshake, discovery, headers and
the negotiated version are the client's own) and runs its share of the workers over them:

- closed model (no ``--rate``): each worker sends, waits for the answer, records the time
  from sending, and sends again;
- open model (``--rate R``): call ``i`` is due at ``t0 + i/R``; worker ``w`` of ``N`` owns
  calls ``w, w+N, w+2N…``, sleeps until the next is due when it is early, and records the
  time from when the call was *due*, so a server that stalls is charged for every call the
  stall delayed (the coordinated-omission correction of wrk2).

A call goes through a driver (:mod:`.drivers`): Streamable HTTP over plain ``http://`` has a
lean one that sends pre-encoded request bytes over a pool of its own
(:mod:`mcp_multi.transport.http1`), every other transport goes through
``MCPConnection.request``. A call's outcome is ``None``
(success) or the kind of its error (:mod:`.outcome`); latencies of successful calls go into
an HDR histogram (microseconds, 1 µs to an hour, 3 significant digits), which worker
processes send encoded to the parent to be merged. :mod:`.report` turns the merged tallies
into the tables, the side-by-side comparison and the JSON document.
"""
