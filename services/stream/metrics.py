"""The stream service's Prometheus metrics, served at /metrics by prometheus-client."""

from prometheus_client import Counter, Gauge, Histogram

from services.stream.feed import OVERFLOW, STALLED

CONNECTIONS = Gauge("gossip_stream_connections", "Open SSE connections")
DELIVERED = Counter("gossip_stream_events_delivered", "Update frames handed to open feeds")
EDITS = Counter("gossip_stream_edits_delivered", "Edit frames handed to open feeds")
RETRACTIONS = Counter("gossip_stream_retractions_delivered", "Retract frames handed to open feeds")
REJECTED = Counter("gossip_stream_rejected_documents", "Documents in updates that cannot be updates, marked `rejected`")
SKIPPED = Counter("gossip_stream_changes_skipped", "Change events that could not be used, logged and skipped",
                  ["collection"])  # fmt: skip
RESTARTS = Counter("gossip_stream_change_stream_restarts", "Change streams reopened after a failure", ["collection"])
RULE_UPDATES = Counter("gossip_stream_rule_updates", "Updates written by watch rules", ["rule"])
RULE_SKIPPED = Counter("gossip_stream_rule_documents_skipped",
                       "Documents a watch rule could not make an update of, logged and skipped", ["rule"])  # fmt: skip
RULE_HISTORY_LOST = Counter(
    "gossip_stream_rule_history_lost", "Watch rules whose resume token could not be used: changes were missed", ["rule"]
)
SLOW_CONSUMERS = Counter(
    "gossip_stream_slow_consumer_disconnects",
    "Feeds ended because their client fell behind: its queue overflowed, or a send to it stalled",
    ["reason"],
)
# From an update's created_at (the publishing process's clock) to the end of this process's fan-out of it, when every
# feed that carries its show has the frame: written to the socket of each idle feed, queued for its sender on a busy
# one. Observed once per update per process, never per feed: the fan-out loop stays as it was.
DELIVERY_LATENCY = Histogram(
    "gossip_delivery_latency_seconds",
    "Seconds from an update's publish to its fan-out to every open feed of this process that carries its show",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
CHANGE_LAG = Gauge(
    "gossip_stream_change_lag_seconds",
    "Seconds from a change's commit (its wallTime, else its clusterTime) to its handling, as of the last change",
    ["collection"],
)
for reason in (OVERFLOW, STALLED):  # both series from the start, at 0
    SLOW_CONSUMERS.labels(reason=reason)
