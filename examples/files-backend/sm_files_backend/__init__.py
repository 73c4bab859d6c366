"""An example storage backend plugin for secret-management: one file per value."""
