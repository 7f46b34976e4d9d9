"""The command line: ``python -m bench <command>``, its record commands and exit statuses."""
