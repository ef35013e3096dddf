"""Test helpers that are real services, not mocks (used by tests, the demo and benchmarks)."""
