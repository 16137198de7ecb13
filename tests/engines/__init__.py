"""Analyzers for tests: well-behaved ones with telling results, and ones that misbehave."""
