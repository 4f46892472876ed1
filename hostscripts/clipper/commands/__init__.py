"""Every process a host command starts, as a pure function that returns its exact argv
(Kamal's `lib/kamal/commands/`): unit-tested as data, executed by `clipper.runner.run`.
Secrets never appear here: they reach a tool through its environment or stdin."""
