"""The study: what the notebooks call (data and cache context, experiment runners, profiles, the papermill pipeline, plots)."""
