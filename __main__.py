"""Clipper's platform on DigitalOcean: load the stack's settings, build it, export its outputs."""

from components.stack import main

main()
