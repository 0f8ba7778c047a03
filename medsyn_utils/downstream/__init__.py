"""The downstream stage: does adding synthetic notes help an ICD-code classifier on RuMedTop3?

inputs (real visits, selection, filter) → leakage (dev/test guard) → classifiers (+ transformer,
tuning on dev) → experiment (settings, controls) → report (paired intervals, reproduction
table) → study (all of it in one call). Figures: :mod:`medsyn_utils.analysis.downstream_figures`.
"""
