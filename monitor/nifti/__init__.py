"""NIfTI files in and out: dcm2niix-style inputs for `qsm-monitor recon`, result maps out."""
