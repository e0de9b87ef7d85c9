"""Inference graphs: several models as one service (docs/GRAPHS.md).

:mod:`aimass.graphs.spec` parses and checks a graph file (``aimass graph validate``; the job's
control step runs the same check against its routing when a graph is deployed);
:mod:`aimass.graphs.run` runs a checked graph over a batch with the engine, called by
:class:`aimass.serving.batches.BatchServer` for requests routed to a graph version.
"""
