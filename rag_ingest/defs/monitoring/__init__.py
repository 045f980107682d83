"""Monitoring: collection health, embedding cost, intermediate file clean-up; scheduled."""
