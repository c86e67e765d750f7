"""The auth service's endpoints, a module per subject, each with its `routes`; services/auth/app.py joins them."""
