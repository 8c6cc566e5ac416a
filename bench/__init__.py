"""Flipper's benchmark and chaos drivers (`make bench`, `make chaos`), and the servers they share with the tests."""
