"""virtabstract's performance harness (issue 8): ``python benchmarks/run.py --help``.

Not part of the installed package; run it from a checkout with the backends and SDKs installed.
"""
