"""Chaos under load: Chaos Toolkit experiments (``experiments/``) run while locust sends real
requests through the stack's front door, judged by the profile's SLOs from the per-request log.

- ``ledger``: the blast radius and the undo of every action (nothing acts without it)
- ``actions``: the actions and probes experiments name as ``type: python`` providers
- ``control``: the Chaos Toolkit control every experiment declares: undo always runs
- ``load`` and ``locustfile``: locust in its own process, one CSV row per request
- ``runner``: one experiment under load, turned into a ``report.Experiment``
"""
