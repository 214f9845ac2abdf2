"""Training FocalClick models from scratch (needs torch): ``focalclick-edge train``.

Modules: ``data`` (augmentation, Target/Focus Crop simulation), ``clicks`` (RITM click simulation, torch
disk maps), ``losses`` (NFL, boundary BCE, boundary-weighted NFL), ``trainer`` (loop, checkpoints, resume),
``validate`` (NoC with the torch model through the runtime click loop), ``checkpoints`` (official format),
``card`` (publishing a checkpoint into the package with its model card), ``cli`` (argparse wiring).
"""
