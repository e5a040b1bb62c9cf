"""The main window's pages, one folder each; ``registry.PAGES`` lists them in tab order.

A page imports only the shared parts (session, jobs, engine, widgets), never another page.
"""
