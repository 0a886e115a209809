"""Trackius: the command-line tool, settings and the local stack that runs the jobs."""
