"""The three Gossip services, and the one process that serves them all for `make run`."""
