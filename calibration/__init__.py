"""What is fitted on data rather than trained: post-processing, thresholds, INT8 calibration."""
