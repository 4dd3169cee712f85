"""`python -m tools.bench`: the same as tools/bench/run (see run.py)."""
from tools.bench.run import main

raise SystemExit(main())
