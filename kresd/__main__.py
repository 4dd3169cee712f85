"""`python -m kresd`: the same as the `kresd` script (kresd/cli.py)."""
from kresd.cli import main

if __name__ == "__main__":
    main(prog_name="kresd")
