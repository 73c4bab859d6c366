"""The commands of `secretctl`, grouped as people think of them: secrets, versions, rotation,
scopes, access, audit, what a server offers, the client's session, and the operator's commands
at the machine. `entrypoints.cli` registers them; `entrypoints.client` is their HTTP client."""
