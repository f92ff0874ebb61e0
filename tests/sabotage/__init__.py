"""Sabotage checks (issue 20): deliberate breakages of the package that the test suite must catch.

Not collected by the default ``pytest`` run (``tests/conftest.py`` ignores this folder); run
``python -m tests.sabotage.run`` (see ``run.py``).
"""
