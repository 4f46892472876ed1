"""DigitalOcean as the provider and its API see it: the rules the schema cannot express (each
with its source), the checks the provider makes of single inputs, and the form each input
reads back in."""
