"""Data: the DCASE2020 layout and index, safe WAV reading, the Zenodo records and downloaders, the synthetic dataset."""
