"""In-service part of spanledger: attribution, the cost span processor, one-line setup, distro.

Submodules: ``attribution`` (``attribute``), ``cost_processor``
(``CostSpanProcessor``), ``state`` (bounded per-trace state), ``setup``
(``configure``), ``distro`` (``opentelemetry-instrument`` entry points), ``outcome``
(``outcome``: business outcomes for cost per outcome).
"""
