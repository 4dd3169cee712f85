"""Modules: the registry (registry.py), Python built-ins (one file each) and the
adapter for modules written in Lua (lua_adapter.py)."""
