"""HTTP servers of masking: the installers' console (`masking ui`) and live masked streams."""
