"""Clipper's platform as Pulumi components, and the settings, renderers and engine they use."""
