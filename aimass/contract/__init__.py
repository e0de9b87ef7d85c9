"""The wire contract: what producers, the job, the gateway and consumers agree on.

Messages (``messages``), every limit (``limits``), the structural rules of a request
(``rules``), the Avro codec with its pre-decode scans and fast paths (``codec``,
``avro_fast``), the Java-Python batch frames (``frames``) and the key hash the Java steps
mirror (``keys``). No ONNX Runtime, no Flink, no Kafka client: a client can import all of it.
"""
