"""Models as services at run time: the control topic's commands, the routing they build, and
where a version's bytes come from (``docs/CONTROL.md``).

* :mod:`.commands`: the typed commands and their Avro codec (``schemas/control.avsc``).
* :mod:`.routing`: the rules, pure: applying a command to the routing (or refusing it), and
  which version serves a request. The Java ``Route`` operator implements the same resolution
  (shared vectors in ``tests/vectors/routes.tsv``).
* :mod:`.blobs`: a version's bytes on a Kafka topic, uploaded in chunks and fetched by offset.
* :mod:`.store`: a TaskManager's deployed versions, fetched, checked and loaded.
* :mod:`.admin`: the front doors' side: read the routing back, check and publish commands, sync
  the local model folder.
"""
