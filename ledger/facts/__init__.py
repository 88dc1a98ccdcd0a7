"""Issued facts: what the engine has issued or recorded, kept in the store, never recomputed.

Invoices, payments and cash applications, credit notes, debit adjustments, the plan
versions each invoiced cycle is pinned to, and the prepaid-credit grants reduced by
credit notes. Each module holds one kind of fact and its loader; :func:`load_facts`
reads all of them once, as a frozen :class:`IssuedFacts` that every later stage
(rating, accruals, drafting, the journal, documents) takes as data.
"""
