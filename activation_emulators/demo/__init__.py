"""`activation demo`: the example project on generated data, against every emulator."""
