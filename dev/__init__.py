"""Running Gossip on this machine: the embedded database, service processes and `make run`. Dev-only: the bench and
the tests import it, no service does."""
