"""What the three Gossip services share: settings, database access, sessions, errors and pages."""
