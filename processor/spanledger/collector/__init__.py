"""``spanledger collector``: OTLP receivers -> durable spool -> pricing -> ClickHouse.

Entry points: :class:`spanledger.collector.app.Collector` (Python API, used by
the CLI and the demo) and :func:`spanledger.collector.config.load_config`.
"""
