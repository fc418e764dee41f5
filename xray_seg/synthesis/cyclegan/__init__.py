"""CycleGAN domain transfer (Zhu et al. 2017) for augmenting rare threat classes.

Paper 1, §4.2: ordinary photographs of prohibited items are translated into X-ray
security image style with CycleGAN, and the translated images, which keep their
annotations, enlarge the training set.

* :mod:`xray_seg.synthesis.cyclegan.layers`: reflection padding and the residual block (``keras.ops``).
* :mod:`xray_seg.synthesis.cyclegan.models`: ResNet generator and 70x70 PatchGAN discriminator.
* :mod:`xray_seg.synthesis.cyclegan.config`: :class:`CycleGANConfig` (paper defaults).
* :mod:`xray_seg.synthesis.cyclegan.images`: unpaired image folders, random crops, the image pool.
* :mod:`xray_seg.synthesis.cyclegan.trainer`: losses, the training loop, checkpoint and resume.
* :mod:`xray_seg.synthesis.cyclegan.translate`: a Labelme folder into X-ray style, shapes kept.
"""
