"""Client keys, teams, their model access, limits and budgets, and the spend ledger.

Keys and teams are declared in the routing file (``keys:``, ``teams:``, with LiteLLM's ``/key/generate``
field names) and compiled into an :class:`~routerd.access.table.AccessTable` that a reload swaps with
the rest of the routing table. Decisions are pure functions of (table, key, spend, usage, now); spend is
kept by :mod:`routerd.access.ledger`.
"""
