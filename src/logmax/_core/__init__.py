"""The contract: argument checks and error messages, dtypes, and the reference implementation."""
