"""Training: the per-method runner, side-by-side processes, devices, checkpoints and the GAN trainer."""
