"""Plugins: the hook specifications and the built-in plugins, discovered through entry points."""

from plugins.hookspecs import hookimpl, hookspec

__all__ = ["hookimpl", "hookspec"]
