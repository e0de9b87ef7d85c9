"""What runs inside a TaskManager's Python step: the model repository (``models``, no ONNX
Runtime import), ONNX Runtime sessions (``sessions``), the model-fit rules (``fit``), the
inference engine (``engine``), error results and dead letters (``rejects``) and the batch
server the job's operator calls once per batch (``batches``). Graphs are run by
:mod:`aimass.graphs.run` on the same engine. No Flink import: ``udfs/`` wraps these.
"""
