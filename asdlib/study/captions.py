"""The captions that label every table: synthetic data, or which real recordings (used by the context and the site)."""
from __future__ import annotations

SYNTHETIC_CAPTION = ("SYNTHETIC DATA (asdlib synth, profile {profile}) and {model_note}: these figures test the "
                     "pipeline and are NOT the study's results; the study's reference figures are labelled (study).")
REAL_CAPTION = ("REAL DCASE2020 Task 2 recordings{subset} under {root}, {counts}; profile {profile}, {seeds}. "
                "{size_note}")
SUBSET_NOTE = ("The subset is far smaller than the study's data (about 1,000 training clips per ID and the full "
               "test sets), so these figures are not the study's; the study's reference figures are labelled (study).")
