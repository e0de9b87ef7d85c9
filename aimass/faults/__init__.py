"""Fault injection: faults and bad input, proven to lose nothing, double nothing, crash nothing.

No Flink import; the stack is driven through :mod:`aimass.stack` and the Flink REST API.

Public API:

* :mod:`aimass.faults.oracle` (pure): :class:`~aimass.faults.oracle.Expectation`,
  :func:`~aimass.faults.oracle.judge` -> :class:`~aimass.faults.oracle.Verdict` (missing,
  duplicates, identical and conflicting duplicates, wrong results, per delivery mode),
  :func:`~aimass.faults.oracle.recovery_times`, :func:`~aimass.faults.oracle.digest`.
* :mod:`aimass.faults.malformed` (pure): :class:`~aimass.faults.malformed.BadRecords` makes
  :class:`~aimass.faults.malformed.BadRecord` of every kind in
  :data:`~aimass.faults.malformed.KINDS`, each with the answer the job owes it;
  :data:`~aimass.faults.malformed.DESCRIPTIONS` says in one line what each kind is.
* :mod:`aimass.faults.fuzz` (pure): :class:`~aimass.faults.fuzz.Mutator` (seeded damage to valid
  requests, owed one answer of any status) and :func:`~aimass.faults.fuzz.load_corpus` (a folder
  of malformed records from outside the repository, ``--bad-corpus``).
* :mod:`aimass.faults.reader`: :class:`~aimass.faults.reader.Reader` reads results and dead
  letters back on a thread of its own.
* :mod:`aimass.faults.inject`: :func:`~aimass.faults.inject.kill_taskmanager` (SIGKILL, then
  start again), :func:`~aimass.faults.inject.restart_broker`,
  :func:`~aimass.faults.inject.num_restarts`, :func:`~aimass.faults.inject.failures` (each
  blamed on Python code or not), :func:`~aimass.faults.inject.failure_times`,
  :func:`~aimass.faults.inject.aim_at_checkpoint`, :func:`~aimass.faults.inject.checkpoint_spanning`.
* :mod:`aimass.faults.plan` (pure): :class:`~aimass.faults.plan.Plan` (what a campaign sends and
  breaks) and :data:`~aimass.faults.plan.SMOKE`, the short one.
* :mod:`aimass.faults.schedule`: :class:`~aimass.faults.schedule.FaultSchedule` (when and how
  the traffic phase's faults strike).
* :mod:`aimass.faults.campaign`: :class:`~aimass.faults.campaign.Campaign` (bad input
  alone, then paced traffic under faults, then the verdict and the report's figures).
* :mod:`aimass.faults.report`: :func:`~aimass.faults.report.render` (``docs/RELIABILITY.md``).
* :mod:`aimass.faults.run`: ``python -m aimass.faults`` (``make faults``, ``make faults-smoke``)
  on a stack of its own ports.
"""
