"""Command-line entry points (``python -m jaxadv --help``): the parser and the evaluation
commands in ``_main.py``, the training commands in ``_training.py``."""

from jaxadv.cli._main import main as main
