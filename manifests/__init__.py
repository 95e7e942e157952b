"""The data contract: Arrow schemas of every table, drop reasons, the stage ledger and run config.

This package imports nothing of the project; every other package reads it.
"""
