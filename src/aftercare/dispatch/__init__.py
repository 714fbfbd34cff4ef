"""Sending what is due: claim with a lease, re-check policy, send in parallel, record, reconcile."""
