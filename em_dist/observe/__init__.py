"""Observing the job beside the script's own metrics: system metrics per rank and step timing.

- :mod:`.steps`: the step-timing rule (when a rank reached a step, step time, lag behind the
  first rank, the slowest rank); standard library only, shared by SDK, CLI and server.
- :mod:`.process`: process and host readings through psutil.
- :mod:`.nvml`: GPU readings through NVML and their conversion to metrics.
- :mod:`.sampler`: the daemon thread that turns those readings into ``system`` records.
"""
