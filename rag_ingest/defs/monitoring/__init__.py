"""Monitoring: collection health, embedding cost, intermediate file clean-up; scheduled."""

# The group of every monitoring asset; the monitoring job selects it.
GROUP = "monitoring"
