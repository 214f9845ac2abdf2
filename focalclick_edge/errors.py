"""Errors users can act on. The CLI prints them as one line, without a traceback."""
from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user (file, flag, image, click, mask): the message names the problem and fix."""
