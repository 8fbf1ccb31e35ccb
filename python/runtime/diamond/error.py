"""``diamond.error``: Diamond's exception."""


class DiamondException(Exception):
    """An error Diamond's API raises."""
