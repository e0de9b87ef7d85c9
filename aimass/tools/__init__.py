"""Demo and traffic helpers for people and tests, not for the job: the demo models and their
holdout (``demo``), the demo run behind the README's first command (``demo_run``) and
request traffic over Kafka (``traffic``)."""
