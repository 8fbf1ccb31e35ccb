"""``diamond.convertor``: see ``wdiamond.convertor``."""
from wdiamond.convertor import binary, camelcase_to_underscore, time  # noqa: F401
