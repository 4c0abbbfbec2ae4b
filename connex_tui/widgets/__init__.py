"""Widgets and formatting shared by the interface's screens."""
