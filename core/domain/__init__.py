"""The business itself: entities, values, states and errors, importing only the standard library."""
