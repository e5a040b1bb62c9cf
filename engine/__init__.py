"""Promptbank's engine: everything that computes or stores. No Qt here.

Importing this package stays cheap (no torch), so the desktop can use the torch-free
modules (protocol, library catalogue) directly.
"""

__version__ = "0.1.0"
