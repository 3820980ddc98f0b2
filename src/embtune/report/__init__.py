"""Presenting results: tables now; plots and HTML reports build on these."""
