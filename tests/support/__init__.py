"""Helpers the tests share: free ports, real fap processes that are always stopped."""
