"""`activation daemon`: scheduled runs that never overlap, survive restarts, and can be watched.

service (signals, reload, scheduler) · cycle (leases, model refresh, runs) · metrics ·
health (/healthz, /metrics) · alerts · logs.
"""
