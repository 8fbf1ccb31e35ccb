"""``diamond.convertor``: see ``wdiamond.convertor``."""
from wdiamond.convertor import binary, camelcase_to_underscore  # noqa: F401
