"""Test harness: real server processes, the relay process, the fake master, the fault proxy,
workload and read generators, differential checkers. Tests import from here; nothing here is
a test."""
