"""The daemon shell."""
