"""The repository ports, one module per area; the unit of work that holds them is
`ports.unit_of_work`."""
