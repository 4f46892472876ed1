"""What the program needs to work on a host: where things live on it (layout.py), which role
gets which files (files.py), how it reaches one over SSH with a pinned host key (connection.py,
keys.py), how files get there (remote_files.py), and the one sequence that sets a host up
(setup.py: wait for it, install files, activate)."""
