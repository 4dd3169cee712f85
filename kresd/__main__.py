"""`python -m kresd`: the same as the `kresd` script (kresd/cli.py entry)."""
from kresd.cli import entry

if __name__ == "__main__":
    entry()
