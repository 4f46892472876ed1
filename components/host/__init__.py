"""What the program needs to work on a host: how it reaches one over SSH (connection.py) and
the one sequence that sets a host up (setup.py: wait for it, install files, activate)."""
