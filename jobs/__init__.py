"""Deployable PyFlink jobs, one module each."""
