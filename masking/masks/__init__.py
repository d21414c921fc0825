"""Privacy masks: rasterised zone masks and their application to frames and batches."""
