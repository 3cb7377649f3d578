"""The ``spanledger`` command line: one module per command group."""
