"""Synthetic dual-energy X-ray scans written as Labelme folders, and CycleGAN photo-to-X-ray transfer."""
