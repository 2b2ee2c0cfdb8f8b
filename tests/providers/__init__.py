"""Provider SDK instrumentation tests, against a loopback stand-in for each API."""
