"""Reporting: AUC/pAUC as the DCASE evaluator computes them, tidy result tables, the study's reference figures, DCASE file formats."""
