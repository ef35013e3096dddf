"""Local vendor emulators, the `--sandbox` stand-ins and the demo: real services, not mocks.

Used by the tests, `activation demo`, `plan/run --sandbox` and the benchmarks; installed by the
`sandbox` extra (its third-party needs) and never imported by the runtime package `activation`
except from the lazy `--sandbox` and `demo` entry points (an import-linter contract says so).
"""
