"""Renderers: pure functions, settings (and resolved addresses) in, host file text out."""
