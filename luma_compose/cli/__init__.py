"""The command line: fast (click-free render/check), main (click), one module per command group, report."""
