"""Diamond's package name, so that a Diamond collector runs unchanged
(``import diamond.collector``): the same code as ``wdiamond``."""
