"""``spanledger reconcile``: the provider's bill against what spanledger metered.

Layer: above the reports (it builds a :class:`~spanledger.reports.tabular.Report`
and reads the store the way the reports do), below the command line and the demo.

- :mod:`.formats`: every export format as data (fields, units, token types, tiers);
- :mod:`.readers`: read export files into bill lines (``file:line`` errors);
- :mod:`.metered`: what spanledger metered, per day x provider x model x token type;
- :mod:`.compare`: the two side by side, each difference with its reason;
- :mod:`.report`: the rows, the coverage and the exit code.
"""
