"""What an operator runs to change flags: the `flipper` command, the console, the function's admin event."""
