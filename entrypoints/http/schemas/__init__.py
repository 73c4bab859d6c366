"""Marshmallow schemas of the REST API, one module per resource. They reject unknown fields
and never echo values."""
