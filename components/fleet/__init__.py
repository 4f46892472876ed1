"""The fleet command, `python -m components ops --stack STACK status|rollback|logs|lock`.

Every host of a stack at once, from an admin network, over SSH as the deploy user, the way
`kamal app details|rollback|logs|lock status` works for Kamal. The hosts and the deploy key come
from the stack's outputs (`fleetHosts`, `deployPrivateKey`), never from a hand-kept list.

Shaped like the host scripts (and Kamal's `commands/`): `outputs` reads the stack outputs,
`commands` builds every remote argv as data, `status` and `rollback` decide as pure functions,
`ssh` is the one thin runner (the system `ssh` client; the key in a 0600 temp file), and `cli`
wires them to the command line.
"""
