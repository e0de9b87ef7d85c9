"""Inference graphs: several models as one service (docs/GRAPHS.md).

:mod:`aimass.graphs.spec` parses and checks a graph file; ``aimass graph validate`` runs that
check against the local model repository. Serving graphs in the job is not built yet
(docs/GRAPHS.md says what is and is not there).
"""
