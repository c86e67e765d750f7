"""The stream service's Prometheus metrics, served at /metrics by prometheus-client."""

from prometheus_client import Counter, Gauge

CONNECTIONS = Gauge("gossip_stream_connections", "Open SSE connections")
DELIVERED = Counter("gossip_stream_events_delivered", "Update frames handed to open feeds")
RESTARTS = Counter("gossip_stream_change_stream_restarts", "Change streams reopened after a failure", ["collection"])
SLOW_CONSUMERS = Counter("gossip_stream_slow_consumer_disconnects", "Feeds ended because their client fell behind")
