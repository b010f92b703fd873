"""What a task costs, before and after (issue 13).

- :mod:`.price_table`: per-provider price tables, the defaults drawn from the seed pages
  (:mod:`.default_prices`) and the ``OMNIHOOK_PRICE_TABLE`` file that overrides them;
- :mod:`.estimate`: a task's estimated cost from its provider body and a table;
- :mod:`.budgets`: daily, monthly and per-metadata-key budgets, their windows, what counts as
  spent, refusals (:class:`~service.errors.BudgetExceeded`) and the 50/80/100 % thresholds.

All of it is pure: no database, no HTTP, no clock (callers pass the time). The package imports
nothing on its own so that :mod:`service.errors` may use :mod:`.amounts`.
"""
