"""Platforms behind one seam (base.Platform): model, wfp, nflog."""
