"""What the tests are built from, a module per concern: live servers, waiting, accounts, SSE feeds, updates."""
