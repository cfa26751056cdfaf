"""ID classification (the study's Method 1): config, losses, augmentation, schedule, trainer, checkpoints, inference, scorers, thresholds, transfer."""
