"""Budgets that act: evaluation, forecast, anomalies, alert state and delivery.

Reads the rollups through the :class:`~spanledger.store.base.Store` protocol
(like the reports), so the same code runs in the collector's schedule, in
``spanledger alerts check`` and in ``spanledger report budgets|anomalies``.

- :mod:`.periods`: which days a budget's current period covers;
- :mod:`.forecast`: period-end spend (weekday-seasonal run-rate, else linear);
- :mod:`.evaluate`: spend per budget scope, thresholds reached (at ``>=``);
- :mod:`.anomalies`: spikes, creeps and runaway runs against robust baselines;
- :mod:`.alert_state`: the ``budget_alerts`` table (claim, then deliver, once);
- :mod:`.delivery`: webhook (HMAC-SHA256), Slack, log; retries with backoff;
- :mod:`.runner`: one evaluation tick, from spend to delivered alerts;
- :mod:`.service_state`: the ``GET /budgets/state`` document services poll;
- :mod:`.report`: ``report budgets`` and ``report anomalies`` as Report objects.

The budgets file itself is read by :mod:`spanledger.reports.budgets` (also the
``report spend --model budget`` input); it is re-exported here for the layers
that may not import the reports (the collector).
"""

from spanledger.reports.budgets import BudgetFile, load_budget_file

__all__ = ["BudgetFile", "load_budget_file"]
