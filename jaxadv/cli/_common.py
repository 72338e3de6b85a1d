"""What the command modules share."""

from __future__ import annotations


def check_dir_flag(parser, flag: str, value) -> None:
    """A directory flag must not name a file or lie under one (checked before any work)."""
    from jaxadv import _checks

    if value is not None:
        try:
            _checks.check_directory(flag, value)
        except ValueError as err:
            parser.error(str(err))
