"""The opt-in autoscaler of the inference job (``aimass autoscale``).

Public API:

* :class:`~aimass.autoscale.metrics.Sample` and :class:`~aimass.autoscale.metrics.MetricsCollector`:
  consumer lag, busy time of the batch-infer vertex, end-to-end latency of fresh results.
* :func:`~aimass.autoscale.policy.decide` and :class:`~aimass.autoscale.policy.Decision`: the pure
  policy (thresholds with hysteresis, sustained samples, cool-down, bounds).
* :func:`~aimass.autoscale.loop.run`: sample, decide, rescale, log one line per decision.

Settings: :class:`aimass.settings.AutoscaleSettings` (``AIMASS_AUTOSCALE_*``). See docs/SCALING.md.
"""
