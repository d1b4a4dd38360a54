"""The report: figures, tables and a verdict from run directories (``python -m advfit.report``)."""
