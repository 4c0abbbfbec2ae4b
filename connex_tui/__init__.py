"""connex-tui: QuickBooks Desktop <-> web store sync through the QuickBooks Web Connector."""

__version__ = "0.1.0"
